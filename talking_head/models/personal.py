"""A personal generator G': one person's generator, self-contained (spectral norm baked in, psi', e_new).

Few-shot personalisation (``talking_head.finetune``) makes it, ``talking_head.avatar`` saves and loads
it, and it renders without the meta-learned model: the avatar file needs nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from talking_head.config import ModelConfig
from talking_head.models.blocks import bake_spectral_norm, baked_state_dict
from talking_head.models.generator import Generator

#: (landmark images, psi, warped shots at the model's resolution or None) -> (painting, mask or None):
#: ``Generator.paint``, in torch or in ONNX Runtime (``talking_head.generator_runtime``).
Painter = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor | None]]


class PersonalGenerator(nn.Module):
    """A personalised generator: G' (spectral norm baked), psi' and the embedding it started from."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.generator = bake_spectral_norm(Generator(config))
        del self.generator.projection  # psi' replaces P e: an avatar needs no projection
        self.psi = nn.Parameter(torch.zeros(1, self.generator.num_adain_params))
        self.register_buffer("embedding", torch.zeros(1, config.embedding_dim))

    @classmethod
    def from_generator(cls, generator: Generator, psi: torch.Tensor, embedding: torch.Tensor,
                       config: ModelConfig) -> PersonalGenerator:
        """G (spectral norm still live), psi' and e_new frozen into a personal generator in eval mode."""
        personal = cls(config)
        baked = baked_state_dict(generator)
        personal.generator.load_state_dict({k: v for k, v in baked.items() if not k.startswith("projection.")})
        with torch.no_grad():
            personal.psi.copy_(psi.detach().reshape(1, -1))
            personal.embedding.copy_(embedding.detach().reshape(1, -1))
        return personal.eval().requires_grad_(False)

    @torch.no_grad()
    def generate(self, landmark_images: torch.Tensor, warped: torch.Tensor | None = None,
                 paint_region: torch.Tensor | None = None, painter: Painter | None = None) -> torch.Tensor:
        """(B, 3, H, W) landmark images in [-1, 1] (+ on the texture path the warped shots and, optionally,
        where G may paint: ``Generator.forward``) -> frames in [-1, 1], float32.

        ``painter`` runs the network (``Generator.paint``'s signature; default torch in float32): which one is
        the caller's choice (``talking_head.generator_runtime``), not the model's. The composite is always
        torch's, in float32.
        """
        device = self.psi.device
        landmark_images = landmark_images.to(device)
        warped, paint_region = (t.to(device) if t is not None else None for t in (warped, paint_region))
        small = self.generator.at_model_resolution(warped) if warped is not None else None
        painted, mask = (painter or self.generator.paint)(landmark_images, self.psi, small)
        return painted.float() if mask is None else self.generator.composite(painted, mask, warped, paint_region)
