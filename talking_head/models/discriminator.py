"""Projection discriminator D(x, y, i): realism of a frame given its landmarks, for video i.

r = V(x, y)^T (W_i + w0) + b. The per-video columns W_i are what the embedding-match loss ties to the
embedder's output, which is what lets fine-tuning start D' from W' = w0 + e_new (see ``score``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talking_head.config import ModelConfig
from talking_head.models.blocks import ResBlock, encoder_blocks
from talking_head.models.embedder import encoder_channels


class Discriminator(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.embedding_dim
        plan = encoder_channels(config, config.image_channels + config.landmark_channels, dim)
        self.blocks = encoder_blocks(plan, config.attention_resolutions)
        self.final = ResBlock(dim)  # the paper's extra residual block at the lowest resolution
        self.W = nn.Parameter(torch.randn(dim, config.num_videos) * 0.02)
        self.w0 = nn.Parameter(torch.randn(dim) * 0.02)
        self.b = nn.Parameter(torch.zeros(1))

    def features(self, frames: torch.Tensor, landmark_images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """V(x, y) (B, embedding_dim) and every block's activation (for feature matching)."""
        h = torch.cat([frames, landmark_images], dim=1)
        activations = []
        for block in [*self.blocks, self.final]:
            h = block(h)
            activations.append(h)
        return F.relu(h.sum(dim=(2, 3))), activations

    def score(self, v: torch.Tensor, video_index: torch.Tensor | None = None,
              w: torch.Tensor | None = None) -> torch.Tensor:
        """Realism r = v^T (W_i + w0) + b, with W_i the column of ``video_index`` or an explicit ``w``.

        ``w`` (shape (dim,) or (B, dim)) stands in for W_i during few-shot fine-tuning, where the new
        person has no column.
        """
        if (video_index is None) == (w is None):
            raise ValueError("pass exactly one of `video_index` or `w`")
        column = self.W[:, video_index].T if w is None else w.expand_as(v)
        return (v * (column + self.w0)).sum(dim=1) + self.b

    def forward(self, frames: torch.Tensor, landmark_images: torch.Tensor, video_index: torch.Tensor | None = None,
                w: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        v, activations = self.features(frames, landmark_images)
        return self.score(v, video_index, w), activations
