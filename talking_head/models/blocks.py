"""Building blocks shared by the embedder, generator and discriminator (defined once, here).

All convolutions are spectrally normalised, as in the paper (for G as well as for E and D). Residual
blocks follow BigGAN's layout (pre-activation, a 1x1 convolution on the skip path when widths differ),
which is what the paper's blocks are modelled on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm


def sn_conv(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Conv2d:
    """A spectrally normalised convolution that keeps the spatial size."""
    return spectral_norm(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2))


def bake_spectral_norm(module: nn.Module) -> nn.Module:
    """Replace every spectral-norm parametrisation by its current normalised weight, in place.

    Spectral norm divides each weight by its largest singular value on *every* forward pass; once a
    model is only rendered (no more training) that work is wasted, so the pipeline bakes it away.
    Outputs are unchanged (eval mode uses the stored singular vectors, never a new power iteration).
    """
    for child in module.modules():
        if parametrize.is_parametrized(child, "weight"):
            parametrize.remove_parametrizations(child, "weight", leave_parametrized=True)
    return module


def baked_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict ``bake_spectral_norm(module)`` would have, without touching ``module``.

    (Baking a deep copy is not an option: parametrised copies share their generated classes with the
    original, so removing a parametrisation from the copy breaks the original.)
    """
    state = {k: v for k, v in module.state_dict().items() if ".parametrizations." not in k}
    for name, child in module.named_modules():
        if parametrize.is_parametrized(child, "weight"):
            state[f"{name}.weight" if name else "weight"] = child.weight.detach().clone()
    return state


class AdaIN(nn.Module):
    """Adaptive instance normalisation: instance-normalise, then scale and shift by per-sample params.

    The parameters are not owned by the layer: the generator hands each AdaIN its slice of the vector
    psi = P e (or of the fine-tuned psi'), so identity enters G *only* through that vector.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.num_params = 2 * channels

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        scale, bias = params.view(params.shape[0], 2, self.channels, 1, 1).unbind(1)
        return F.instance_norm(x) * scale + bias


class SelfAttention(nn.Module):
    """SAGAN self-attention with a learned gate that starts at zero (the block begins as identity)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(1, channels // 8)
        self.query = sn_conv(channels, inner, 1)
        self.key = sn_conv(channels, inner, 1)
        self.value = sn_conv(channels, max(1, channels // 2), 1)
        self.out = sn_conv(max(1, channels // 2), channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        query = self.query(x).flatten(2).transpose(1, 2)  # B, N, C'
        key = F.max_pool2d(self.key(x), 2).flatten(2).transpose(1, 2)  # B, N/4, C'
        value = F.max_pool2d(self.value(x), 2).flatten(2).transpose(1, 2)  # B, N/4, C/2
        attended = F.scaled_dot_product_attention(query, key, value, scale=1.0)  # SAGAN: no 1/sqrt(d)
        return x + self.gamma * self.out(attended.transpose(1, 2).reshape(b, -1, h, w))


class ResBlockDown(nn.Module):
    """Residual downsampling block (E, D, and G's encoder with instance norm).

    ``first`` drops the leading activation so raw pixels are not clipped by a ReLU.
    """

    def __init__(self, in_channels: int, out_channels: int, *, instance_norm: bool = False,
                 first: bool = False) -> None:
        super().__init__()
        self.first = first
        self.conv1 = sn_conv(in_channels, out_channels)
        self.conv2 = sn_conv(out_channels, out_channels)
        self.skip = sn_conv(in_channels, out_channels, 1)
        self.norm1 = nn.InstanceNorm2d(in_channels, affine=True) if instance_norm and not first else nn.Identity()
        self.norm2 = nn.InstanceNorm2d(out_channels, affine=True) if instance_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(self.norm1(x))
        h = self.conv2(F.relu(self.norm2(self.conv1(h))))
        return F.avg_pool2d(h + self.skip(x), 2)


class ResBlock(nn.Module):
    """Residual block at constant size; discriminator's last block (no norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = sn_conv(channels, channels)
        self.conv2 = sn_conv(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class AdaptiveResBlock(nn.Module):
    """G's residual block: AdaIN -> ReLU -> conv, twice, optionally upsampling by 2 (nearest).

    The AdaIN parameters come in as an argument (see :class:`AdaIN`); ``num_params`` says how many
    this block consumes from the generator's psi vector.
    """

    def __init__(self, in_channels: int, out_channels: int, *, upsample: bool = False) -> None:
        super().__init__()
        self.upsample = upsample
        self.norm1 = AdaIN(in_channels)
        self.conv1 = sn_conv(in_channels, out_channels)
        self.norm2 = AdaIN(out_channels)
        self.conv2 = sn_conv(out_channels, out_channels)
        self.skip = sn_conv(in_channels, out_channels, 1) if (in_channels != out_channels or upsample) else None
        self.num_params = self.norm1.num_params + self.norm2.num_params

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest") if self.upsample else x

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        p1, p2 = params.split([self.norm1.num_params, self.norm2.num_params], dim=1)
        h = self.conv1(self._resize(F.relu(self.norm1(x, p1))))
        h = self.conv2(F.relu(self.norm2(h, p2)))
        skip = self._resize(x)
        return h + (self.skip(skip) if self.skip is not None else skip)


def encoder_blocks(config_channels: list[tuple[int, int, int]], attention_resolutions: tuple[int, ...],
                   *, instance_norm: bool = False) -> nn.ModuleList:
    """The downsampling pyramid shared by E, D and G's encoder.

    ``config_channels`` lists (in_channels, out_channels, output_resolution) per block; self-attention
    follows every block whose output resolution is in ``attention_resolutions``.
    """
    layers: list[nn.Module] = []
    for i, (cin, cout, resolution) in enumerate(config_channels):
        layers.append(ResBlockDown(cin, cout, instance_norm=instance_norm, first=i == 0))
        if resolution in attention_resolutions:
            layers.append(SelfAttention(cout))
    return nn.ModuleList(layers)
