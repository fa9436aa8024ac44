"""Generator G(y, e): landmark image -> frame of the person whose embedding is e.

Person-specific information reaches G only through AdaIN: psi = P e (+ a learned offset) sets the
scale and bias of every adaptive normalisation. Few-shot fine-tuning replaces psi by a free
parameter psi' initialised from P e, which is why ``forward`` accepts either an embedding or psi.
"""

from __future__ import annotations

import torch
from torch import nn

from talking_head.config import ModelConfig
from talking_head.models.blocks import AdaIN, AdaptiveResBlock, SelfAttention, encoder_blocks, sn_conv


class Generator(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels_at
        # Encoder: image_size -> bottleneck, instance norm, attention where configured.
        plan, resolution, cin = [], config.image_size, config.landmark_channels
        while resolution > config.generator_bottleneck_resolution:
            resolution //= 2
            plan.append((cin, c(resolution), resolution))
            cin = c(resolution)
        self.down = encoder_blocks(plan, config.attention_resolutions, instance_norm=True)
        bottleneck = config.generator_bottleneck_resolution
        self.residual = nn.ModuleList(AdaptiveResBlock(c(bottleneck), c(bottleneck))
                                      for _ in range(config.generator_res_blocks))
        # Decoder: bottleneck -> image_size, AdaIN upsampling blocks, attention where configured.
        self.up = nn.ModuleList()
        self.up_attention = nn.ModuleDict()
        resolution = bottleneck
        while resolution < config.image_size:
            self.up.append(AdaptiveResBlock(c(resolution), c(resolution * 2), upsample=True))
            resolution *= 2
            if resolution in config.attention_resolutions and resolution < config.image_size:
                self.up_attention[str(len(self.up) - 1)] = SelfAttention(c(resolution))
        self.out_norm = AdaIN(c(config.image_size))
        self.out_conv = sn_conv(c(config.image_size), config.image_channels)
        adaptive = [*self.residual, *self.up, self.out_norm]
        self.adain_sizes = [block.num_params for block in adaptive]
        self.num_adain_params = sum(self.adain_sizes)
        # P: the projection from the embedding to psi. Its bias makes AdaIN start as (scale 1, shift 0),
        # so an untrained G behaves like a plain instance-normalised network.
        self.projection = nn.Linear(config.embedding_dim, self.num_adain_params)
        nn.init.normal_(self.projection.weight, std=0.02 / config.embedding_dim ** 0.5)
        with torch.no_grad():
            self.projection.bias.copy_(self._identity_psi())

    def _identity_psi(self) -> torch.Tensor:
        parts = []
        for size in self.adain_sizes:
            parts += [torch.ones(size // 2), torch.zeros(size // 2)]
        return torch.cat(parts)

    def project(self, embedding: torch.Tensor) -> torch.Tensor:
        """psi = P e: (B, embedding_dim) -> (B, num_adain_params)."""
        return self.projection(embedding)

    def forward(self, landmark_images: torch.Tensor, embedding: torch.Tensor | None = None,
                psi: torch.Tensor | None = None) -> torch.Tensor:
        """Render (B, 3, H, W) frames in [-1, 1] from landmark images and either ``embedding`` or ``psi``.

        A single embedding/psi row is broadcast over the batch (one person, many poses).
        """
        if (embedding is None) == (psi is None):
            raise ValueError("pass exactly one of `embedding` or `psi`")
        if psi is None:
            psi = self.project(embedding.reshape(-1, self.config.embedding_dim))
        psi = psi.reshape(-1, self.num_adain_params).expand(landmark_images.shape[0], -1)
        params = psi.split(self.adain_sizes, dim=1)
        h = landmark_images
        for block in self.down:
            h = block(h)
        for block, p in zip(self.residual, params):
            h = block(h, p)
        for i, block in enumerate(self.up):
            h = block(h, params[len(self.residual) + i])
            if str(i) in self.up_attention:
                h = self.up_attention[str(i)](h)
        h = torch.relu(self.out_norm(h, params[-1]))
        return torch.tanh(self.out_conv(h))
