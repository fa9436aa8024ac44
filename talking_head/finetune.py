"""Few-shot personalisation (the paper's stage 2): from K shots of a new person to a personal generator.

- ``steps == 0``: the paper's feed-forward mode, psi' = P e_new.
- ``steps > 0``: the paper's fine-tuning. G' starts from G with psi' initialised to P e_new; D' starts
  from D with the new person's column initialised to e_new (so W' + w0 = w0 + e_new, as in the paper);
  G' and psi' minimise L_CNT + L_ADV (feature matching included), D' the hinge loss, on the K shots.

On the texture path a shot cannot be its own texture (G would learn to copy): each shot is re-drawn
from the *other* shots warped onto its landmarks (leave-one-out), and with one shot from a
pseudo-source, the shot warped to randomly perturbed landmarks, which G learns to restore.

The result, a :class:`~talking_head.models.PersonalGenerator`, is self-contained (G' with spectral norm
baked in, psi', e_new): it renders without the meta-learned model, and ``talking_head.avatar`` saves it.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from talking_head.device import pick_device
from talking_head.losses import ContentLoss, GanPhases, LossWeights, make_optimizers
from talking_head.models import Generator, PersonalGenerator
from talking_head.models.talking_head_model import TalkingHeadModel
from talking_head.options import option
from talking_head.shot_bank import choose_shots, paint_region, warp_from_bank
from talking_head.warp import warp_to_landmarks

#: progress(step, total_steps, losses) after every fine-tuning step.
ProgressCallback = Callable[[int, int, dict[str, float]], None]


@dataclass(frozen=True)
class FinetuneConfig:
    #: The paper's feed-forward mode by default. On the texture path G paints only inside the mouth, and
    #: K shots of one face never show it opening: measured on the astronaut (K = 1, dlib's judge, four
    #: drivers), 40 steps lowered the mouth-follow r from 0.82 to 0.67 at the same identity distance
    #: and sharpness, and on held-out synthetic people 40 steps were slightly worse than none (README).
    steps: int = option(0, "fine-tuning steps (0 = the paper's feed-forward mode)")
    #: Measured on the shipped `small` checkpoint (2 held-out identities, K = 8, 40 steps, 8 shots a step):
    #: SSIM / PSNR 0.740 / 21.0 dB at 2e-4, 0.776 / 22.4 at 5e-4, 0.793 / 23.7 at 1e-3. 1e-3 dipped
    #: mid-run on an earlier checkpoint (SSIM 0.61 -> 0.47 at step 40), so the default takes the middle.
    lr_generator: float = option(5e-4, "Adam learning rate of G' and psi' (paper: 5e-5 over 40 epochs; a few "
                                 "dozen steps need more)")
    lr_discriminator: float = option(2e-4, "Adam learning rate of D' (paper: 2e-4)")
    #: The paper weights L_ADV 1 (feature matching 10). With a discriminator meta-trained for hours rather
    #: than weeks its gradient swamps the content loss on K shots: measured on held-out frames (tiny model,
    #: 3 unseen people, K = 8, 30 steps), L1 went 0.370 -> 0.373 at weight 1, -> 0.253 at 0.1 and
    #: -> 0.221 with no adversarial term. 0.1 keeps the paper's realism term without letting it win.
    adversarial: float = option(0.1, "weight of the adversarial term (feature matching gets 10x this)")
    networks: str = option("both", "what fine-tuning trains: both learned generators, only the face's (G over the warp) "
                           "or only the mouth window's", choices=["both", "face", "mouth"])
    batch_size: int = option(8, "shots per step (at most K)")
    seed: int = option(0, "seed of the shot order")
    device: str = option("auto", "auto, cpu, cuda, ...")
    amp: bool = option(True, "bf16 autocast where talking_head.device says it pays (CUDA; CPUs with AMX or "
                             "avx512_bf16)")
    vgg19: str | None = option(None, "VGG19 weights (safetensors) for the content loss")
    vggface: str | None = option(None, "VGGFace weights (safetensors) for the content loss")

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(f"steps must be >= 0 and batch_size >= 1, got {self.steps}, {self.batch_size}")
        if self.networks not in ("both", "face", "mouth"):
            raise ValueError(f"networks must be both, face or mouth, got {self.networks!r}")
        if self.lr_generator <= 0 or self.lr_discriminator <= 0:
            raise ValueError(f"learning rates must be > 0, got {self.lr_generator}, {self.lr_discriminator}")


def perturb_landmarks(points: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """(68, 2) landmarks moved as a small head motion and expression would move them.

    A random similarity (roll up to 6 degrees, scale up to 6 %, shift up to 4 % of the face's size)
    plus per-point jitter of 2 % of it: a pose change a warp must follow, and the warp's artefacts
    that G should learn to repair.
    """
    size = float((points.amax(0) - points.amin(0)).max())
    centre = points.mean(0)
    angle, scale = np.deg2rad(rng.uniform(-6, 6)), 1 + rng.uniform(-0.06, 0.06)
    rotation = torch.tensor([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=points.dtype)
    shift = torch.as_tensor(rng.uniform(-0.04, 0.04, 2) * size, dtype=points.dtype)
    jitter = torch.as_tensor(rng.normal(0, 0.02 * size, points.shape), dtype=points.dtype)
    return (points - centre) @ rotation.T * scale + centre + shift + jitter


def training_textures(frames: torch.Tensor, points: torch.Tensor, chosen: torch.Tensor, rng: np.random.Generator
                      ) -> torch.Tensor:
    """The texture each chosen shot is re-drawn from: the other shots (K > 1) or a pseudo-source (K = 1)."""
    size = frames.shape[-1]
    if frames.shape[0] > 1:
        index = chosen.cpu().numpy()
        choice = choose_shots(points.cpu().numpy(), points[index].cpu().numpy(), exclude=index)
        return warp_from_bank(frames, points, points[chosen], size, choice)
    moved = torch.stack([perturb_landmarks(points[0].cpu(), rng) for _ in chosen]).to(points.device)
    sources = warp_to_landmarks(frames[chosen], points[chosen], moved, size)
    return warp_to_landmarks(sources, moved, points[chosen], size)


def _render(generator: Generator, landmark_images: torch.Tensor, psi: torch.Tensor, warped: torch.Tensor | None,
            region: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """G's phase's rendering: G' with psi', and no loss terms beyond the shared objective."""
    return generator(landmark_images, psi=psi, warped=warped, paint_region=region), {}


def personalize(model: TalkingHeadModel, frames: torch.Tensor, landmark_images: torch.Tensor, points: torch.Tensor,
                config: FinetuneConfig = FinetuneConfig(), progress: ProgressCallback | None = None
                ) -> PersonalGenerator:
    """Personalise ``model`` to K shots: ``frames`` and ``landmark_images`` are (K, 3, H, W) in [-1, 1],
    ``points`` their (K, 68, 2) landmarks in model pixels."""
    if frames.shape != landmark_images.shape or frames.ndim != 4 or frames.shape[0] < 1:
        raise ValueError(f"need (K, 3, H, W) frames and landmark images, got {tuple(frames.shape)} "
                         f"and {tuple(landmark_images.shape)}")
    if points.shape != (frames.shape[0], 68, 2):
        raise ValueError(f"need ({frames.shape[0]}, 68, 2) landmarks, got {tuple(points.shape)}")
    device = pick_device(config.device)
    model = model.to(device).eval()
    frames, landmark_images, points = frames.to(device), landmark_images.to(device), points.to(device).float()
    with torch.no_grad():
        embedding = model.embedder.embed_person(frames, landmark_images)[None]
        psi = model.generator.project(embedding)
    if config.steps == 0:
        return PersonalGenerator.from_generator(model.generator, psi, embedding, model.config).to(device)

    # Both stay in eval mode while they learn: the only layers that differ between modes are the spectral
    # norms, whose training-mode power iteration would re-estimate every sigma at the first step and
    # jolt G's output away from the meta-learned one (measured: held-out L1 0.37 -> 0.39 after 10
    # steps with it, and a steady fall without it). Over a few dozen small steps the stored singular
    # vectors remain a good estimate.
    generator = copy.deepcopy(model.generator).eval()
    discriminator = copy.deepcopy(model.discriminator).eval()
    generator.projection.requires_grad_(False)  # psi' is optimised directly; P is not used any more
    psi = nn.Parameter(psi.clone())
    w = nn.Parameter(embedding[0].clone())  # W' + w0 = w0 + e_new
    weights = LossWeights(adversarial=config.adversarial, feature_matching=10 * config.adversarial)
    content = ContentLoss(weights, config.vgg19, config.vggface).to(device)
    opt_g, opt_d = make_optimizers([psi, *(p for p in generator.parameters() if p.requires_grad)],
                                   [w, *discriminator.parameters()], config.lr_generator, config.lr_discriminator)
    phases = GanPhases(discriminator, content, opt_g, opt_d, device, config.amp)
    rng = np.random.default_rng(config.seed)
    k, batch = frames.shape[0], min(config.batch_size, frames.shape[0])
    for step in range(config.steps):
        chosen = torch.as_tensor(rng.choice(k, size=batch, replace=False), device=device)
        real, drawn = frames[chosen], landmark_images[chosen]
        warped = region = None
        if model.config.texture_path:
            warped = training_textures(frames, points, chosen, rng)
            region = paint_region(points[chosen], frames.shape[-1])
        terms, fake = phases.generator_step(
            functools.partial(_render, generator, drawn, psi, warped, region), real, drawn, w=w.detach())
        d_terms = phases.discriminator_step(fake, real, drawn, w=w)
        if progress is not None:
            progress(step + 1, config.steps, {**{k_: v.item() for k_, v in terms.items()},
                                              "hinge": d_terms["hinge"].item()})
    return PersonalGenerator.from_generator(generator, psi, embedding, model.config).to(device)
