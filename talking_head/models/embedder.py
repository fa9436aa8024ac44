"""Embedder E(x, y): maps a (frame, landmark image) pair to an identity vector; K shots are averaged."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talking_head.config import ModelConfig
from talking_head.models.blocks import encoder_blocks


def encoder_channels(config: ModelConfig, in_channels: int, last_channels: int) -> list[tuple[int, int, int]]:
    """(in, out, output resolution) of each block from ``image_size`` down to ``encoder_min_resolution``.

    Shared by E and D (the paper builds both the same way); the last block outputs ``last_channels``.
    """
    plan, resolution, cin = [], config.image_size, in_channels
    while resolution > config.encoder_min_resolution:
        resolution //= 2
        cout = last_channels if resolution == config.encoder_min_resolution else config.channels_at(resolution)
        plan.append((cin, cout, resolution))
        cin = cout
    return plan


class Embedder(nn.Module):
    """E: residual downsampling with self-attention -> global sum pooling -> ReLU -> ``embedding_dim``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        plan = encoder_channels(config, config.image_channels + config.landmark_channels, config.embedding_dim)
        self.blocks = encoder_blocks(plan, config.attention_resolutions)

    def forward(self, frames: torch.Tensor, landmark_images: torch.Tensor) -> torch.Tensor:
        """Embed a batch of shots: (B, 3, H, W) x2 -> (B, embedding_dim)."""
        h = torch.cat([frames, landmark_images], dim=1)
        for block in self.blocks:
            h = block(h)
        return F.relu(h.sum(dim=(2, 3)))

    def embed_person(self, frames: torch.Tensor, landmark_images: torch.Tensor) -> torch.Tensor:
        """The person's embedding: the mean over K shots of shape (K, 3, H, W) -> (embedding_dim,)."""
        return self(frames, landmark_images).mean(dim=0)
