"""A personal generator G': one person's generator, self-contained (spectral norm baked in, psi', e_new).

Few-shot personalisation (``talking_head.finetune``) makes it, ``talking_head.avatar`` saves and loads
it, and it renders without the meta-learned model: the avatar file needs nothing else.
"""

from __future__ import annotations

import torch
from torch import nn

from talking_head.config import ModelConfig
from talking_head.device import Precision, rendering_backend
from talking_head.device import precision as device_precision
from talking_head.models.blocks import bake_spectral_norm, baked_state_dict
from talking_head.models.generator import Generator


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
                 paint_region: torch.Tensor | None = None, backend: str | None = None,
                 precision: Precision | None = None) -> torch.Tensor:
        """(B, 3, H, W) landmark images in [-1, 1] (+ on the texture path the warped shots and, optionally,
        where G may paint: ``Generator.forward``) -> frames in [-1, 1], float32.

        The network runs where ``talking_head.device`` says it is fastest on this device, unless ``backend``
        (``torch``/``onnx``) and ``precision`` (torch's) say otherwise: ONNX Runtime
        (``talking_head.onnx_backend``; this generator's weights must not change once it has rendered there)
        falling back to torch, or torch in bf16 autocast where the hardware has it. The composite is always
        torch's, in float32.
        """
        device = self.psi.device
        landmark_images = landmark_images.to(device)
        warped, paint_region = (t.to(device) if t is not None else None for t in (warped, paint_region))
        small = self.generator.at_model_resolution(warped) if warped is not None else None
        painter = None
        if (backend or rendering_backend(device)) == "onnx":
            from talking_head.onnx_backend import painter_for  # onnxruntime is optional: imported only here

            painter = painter_for(self)
        if painter is not None:
            painted, mask = painter(landmark_images, self.psi, small)
        else:
            painted, mask = self._paint_in_torch(landmark_images, small, precision or device_precision(device))
        return painted.float() if mask is None else self.generator.composite(painted, mask, warped, paint_region)

    def _paint_in_torch(self, landmark_images: torch.Tensor, warped: torch.Tensor | None, precision: Precision
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if precision.channels_last:
            landmark_images, warped = (t.contiguous(memory_format=torch.channels_last) if t is not None else None
                                       for t in (landmark_images, warped))
        with torch.autocast(self.psi.device.type, dtype=torch.bfloat16, enabled=precision.bf16):
            return self.generator.paint(landmark_images, self.psi, warped)
