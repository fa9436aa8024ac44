"""The paper's losses, in one place for meta-learning and few-shot fine-tuning alike.

- content: L1 between VGG19 (ImageNet) and VGGFace activations of the generated and real frames, when
  the user has those weights (as safetensors); otherwise a pixel-space stand-in (multi-scale L1 +
  SSIM), since no perceptual weights can be downloaded on machines without network.
- adversarial: hinge loss for D, -D(x_hat) for G, plus feature matching on D's activations.
- embedding match: L1 between D's per-video column W_i and the embedder's e_i.

:class:`GanPhases` runs one step of either player on these objectives; meta-learning (``train``) and
fine-tuning (``finetune``) only decide what G renders and when each phase runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from talking_head.device import autocast


@dataclass(frozen=True)
class LossWeights:
    """Loss weights; the paper's values where the paper gives them."""

    vgg19: float = 1e-2
    vggface: float = 2e-3
    pixel_l1: float = 10.0  # stand-in content loss, used when no perceptual weights are given
    ssim: float = 5.0
    adversarial: float = 1.0
    feature_matching: float = 10.0
    embedding_match: float = 80.0


# ---------------------------------------------------------------------------------------------------
# Content: pixel stand-in
# ---------------------------------------------------------------------------------------------------

def _gaussian_window(size: int, sigma: float, channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0, window: int = 7) -> torch.Tensor:
    """Mean structural similarity of two image batches (differentiable; Gaussian window, per channel).

    Evaluation reports SSIM from scikit-image; this differentiable copy exists only to train with.
    """
    channels = x.shape[1]
    kernel = _gaussian_window(window, 1.5, channels, x.device, x.dtype)
    blur = lambda t: F.conv2d(t, kernel, groups=channels)  # noqa: E731
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean()


def multiscale_l1(x: torch.Tensor, y: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """L1 at full, half and quarter resolution: coarse scales reward getting colours and layout right
    before texture, which plain L1 at full resolution alone does weakly."""
    total = x.new_zeros(())
    for s in range(scales):
        if s:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        total = total + (x - y).abs().mean()
    return total / scales


# ---------------------------------------------------------------------------------------------------
# Content: perceptual networks (when weights exist)
# ---------------------------------------------------------------------------------------------------

#: VGG layouts ("M" = max-pool); VGG19 for ImageNet, VGG16 for VGGFace.
_VGG_LAYOUTS = {
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
    "vggface": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
}
#: Activations (after ReLU) the paper compares: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
_VGG_TAPS = {"vgg19": [1, 6, 11, 20, 29], "vggface": [1, 6, 11, 18, 25]}


class VGGFeatures(nn.Module):
    """A frozen VGG trunk returning the activations used by the content loss.

    Weights come from a safetensors file with torchvision's ``features.N.weight`` naming. The input
    preprocessing differs per network and is the classic pitfall of re-implementations: torchvision's
    VGG19 wants RGB in [0, 1] normalised by ImageNet mean/std; the Caffe VGGFace wants BGR in 0..255
    minus its mean pixel.
    """

    def __init__(self, kind: str, weights: str | Path) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG_LAYOUTS[kind]:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                cin = int(v)
        self.features = nn.Sequential(*layers)
        tensors = load_file(str(weights))
        state = {k.removeprefix("features."): v for k, v in tensors.items() if k.startswith("features.")}
        self.features.load_state_dict(state, strict=True)
        self.kind, self.taps = kind, set(_VGG_TAPS[kind])
        self.requires_grad_(False).eval()
        if kind == "vgg19":
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        else:
            self.register_buffer("mean", torch.tensor([129.186, 104.762, 93.594]).view(1, 3, 1, 1))  # RGB order
            self.register_buffer("std", torch.ones(1, 3, 1, 1))

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] RGB -> the network's own input convention, at 224x224 as both nets were trained."""
        x = F.interpolate((images + 1) / 2, size=(224, 224), mode="bilinear", align_corners=False)
        if self.kind == "vggface":
            return ((x * 255 - self.mean) / self.std).flip(1)  # RGB -> BGR after subtracting the RGB mean
        return (x - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        h, taps = self.preprocess(images), []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                taps.append(h)
        return taps


class ContentLoss(nn.Module):
    """L_CNT: perceptual when VGG19/VGGFace weights are given, else the multi-scale L1 + SSIM stand-in."""

    def __init__(
        self, weights: LossWeights, vgg19: str | Path | None = None, vggface: str | Path | None = None
    ) -> None:
        super().__init__()
        self.weights = weights
        self.vgg19 = VGGFeatures("vgg19", vgg19) if vgg19 else None
        self.vggface = VGGFeatures("vggface", vggface) if vggface else None

    @property
    def kind(self) -> str:
        nets = [n for n in ("vgg19", "vggface") if getattr(self, n) is not None]
        return "+".join(nets) if nets else "pixel (multi-scale L1 + SSIM)"

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        loss = fake.new_zeros(())
        for net, weight in ((self.vgg19, self.weights.vgg19), (self.vggface, self.weights.vggface)):
            if net is not None:
                loss = loss + weight * sum((a - b).abs().mean() for a, b in zip(net(fake), net(real)))
        if self.vgg19 is None and self.vggface is None:
            # In float32 even under bf16 autocast: SSIM's variances are differences of squares, which
            # bf16's 8-bit mantissa turns negative (measured: the loss went to -inf within 11 steps).
            with torch.autocast(fake.device.type, enabled=False):
                fake, real = fake.float(), real.float()
                loss = self.weights.pixel_l1 * multiscale_l1(fake, real) + self.weights.ssim * (1 - ssim(fake, real))
        return loss


# ---------------------------------------------------------------------------------------------------
# Adversarial and embedding match
# ---------------------------------------------------------------------------------------------------

def discriminator_hinge(real_score: torch.Tensor, fake_score: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_score).mean() + F.relu(1 + fake_score).mean()


def generator_adversarial(fake_score: torch.Tensor) -> torch.Tensor:
    return -fake_score.mean()


def feature_matching(real_features: list[torch.Tensor], fake_features: list[torch.Tensor]) -> torch.Tensor:
    return sum((f - r.detach()).abs().mean() for r, f in zip(real_features, fake_features)) / len(real_features)


def embedding_match(w_columns: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """L1 between D's per-video columns W_i (B, dim) and the embedder's e_i (B, dim)."""
    return (w_columns - embeddings).abs().mean()


# ---------------------------------------------------------------------------------------------------
# The objectives: what meta-learning and fine-tuning both optimise
# ---------------------------------------------------------------------------------------------------

def generator_objective(discriminator: nn.Module, content: ContentLoss, fake: torch.Tensor, real: torch.Tensor,
                        landmark_images: torch.Tensor, **identity: torch.Tensor) -> dict[str, torch.Tensor]:
    """L_CNT + L_ADV (with feature matching) for G. ``identity`` is D's ``video_index=`` or ``w=``."""
    weights = content.weights
    fake_score, fake_features = discriminator(fake, landmark_images, **identity)
    with torch.no_grad():
        _, real_features = discriminator(real, landmark_images, **identity)
    terms = {
        "content": content(fake, real),
        "adversarial": weights.adversarial * generator_adversarial(fake_score),
        "feature_matching": weights.feature_matching * feature_matching(real_features, fake_features),
    }
    return terms


def discriminator_objective(discriminator: nn.Module, fake: torch.Tensor, real: torch.Tensor,
                            landmark_images: torch.Tensor, **identity: torch.Tensor) -> dict[str, torch.Tensor]:
    """The hinge loss for D on one real and one generated batch (``fake`` is detached here)."""
    real_score, _ = discriminator(real, landmark_images, **identity)
    fake_score, _ = discriminator(fake.detach(), landmark_images, **identity)
    return {"hinge": discriminator_hinge(real_score, fake_score),
            "real_score": real_score.mean().detach(), "fake_score": fake_score.mean().detach()}


# ---------------------------------------------------------------------------------------------------
# The phases: one step of G, one step of D
# ---------------------------------------------------------------------------------------------------

#: Adam's betas for both players (the paper's, after SAGAN): a small beta1 keeps momentum from carrying
#: either player past the other's latest move.
ADAM_BETAS = (0.5, 0.999)

#: What a phase does with its gradients before the optimiser steps (``train`` averages them across ranks).
GradientHook = Callable[[list[nn.Parameter]], None]


def make_optimizers(generator_params: Iterable[nn.Parameter], discriminator_params: Iterable[nn.Parameter],
                    lr_generator: float, lr_discriminator: float) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """G's and D's Adam optimisers (G's holds whatever G's phase trains: E, psi', D's embedding match)."""
    return (torch.optim.Adam(generator_params, lr=lr_generator, betas=ADAM_BETAS),
            torch.optim.Adam(discriminator_params, lr=lr_discriminator, betas=ADAM_BETAS))


@dataclass
class GanPhases:
    """The two players' steps, as stylegan3's ``Loss`` phases: the loops schedule them, this runs them.

    Each phase runs its forward passes under ``autocast``, backpropagates its objective, hands the
    gradients to ``gradient_hook`` and steps its optimiser. During G's objective D's weights are frozen:
    there they are the judge, and G's adversarial terms must move G, not the judge.
    """

    discriminator: nn.Module
    content: ContentLoss
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    device: torch.device
    amp: bool = True
    gradient_hook: GradientHook | None = None

    def generator_step(self, render: Callable[[], tuple[torch.Tensor, dict[str, torch.Tensor]]], real: torch.Tensor,
                       landmark_images: torch.Tensor, **identity: torch.Tensor
                       ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One step of ``opt_g`` on L_CNT + L_ADV (``generator_objective``) plus the caller's own terms.

        ``render()`` (run under autocast) returns G's frames and those extra terms; ``identity`` is D's
        ``w=`` for G's objective, detached, so that G's step cannot teach D's W to call fakes real.
        Returns the loss terms and the frames (float32), which D's phase judges next.
        """
        with autocast(self.device, self.amp):
            fake, extra = render()
            fake = fake.float()
            self.discriminator.requires_grad_(False)
            terms = generator_objective(self.discriminator, self.content, fake, real, landmark_images, **identity)
            self.discriminator.requires_grad_(True)
            terms.update(extra)
        self._step(self.opt_g, sum(terms.values()))
        return terms, fake

    def discriminator_step(self, fake: torch.Tensor, real: torch.Tensor, landmark_images: torch.Tensor,
                           **identity: torch.Tensor) -> dict[str, torch.Tensor]:
        """One step of ``opt_d`` on the hinge loss (``discriminator_objective``) of ``real`` vs ``fake``."""
        with autocast(self.device, self.amp):
            terms = discriminator_objective(self.discriminator, fake.detach().float(), real, landmark_images,
                                            **identity)
        self._step(self.opt_d, terms["hinge"])
        return terms

    def _step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.gradient_hook is not None:
            self.gradient_hook([p for group in optimizer.param_groups for p in group["params"]])
        optimizer.step()
