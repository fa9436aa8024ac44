"""The mouth-window generator's windows, loss and fine-tuning on a person's shots (the paper's stage 2).

Its meta-learning on synthetic heads is ``talking_head.mouth_training``; both use what is here. Fine-tuning
(``personalize`` with steps): psi' starts at P e and G' at G; they learn on the person's own shots, each
re-drawn from the *other* shots warped onto it (leave-one-out, ``finetune.training_textures``): the only
real mouths this network ever sees are the person's own.

The loss is L1 inside the paint region plus 1 - SSIM over the window, without the paper's adversarial term: on a
window this small, meta-trained for minutes on a CPU, a discriminator has not been shown to add anything the
content loss misses (the face G's fine-tuning measured its term hurting: ``FinetuneConfig.adversarial``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from talking_head.finetune import training_textures
from talking_head.landmarks.mouth import mouth_opening
from talking_head.losses import ssim
from talking_head.models import Embedder, Generator, PersonalGenerator
from talking_head.mouth_window import OPEN_FROM, TRAINING_WINDOW, drawings, training_points, training_windows
from talking_head.shot_bank import BANK_FRAME, paint_region, warp_from_bank
from talking_head.tensors import images_to_tensor, to_network

#: The weight of L1 (inside the paint region, where alone the output can differ from the warp) against 1 - SSIM.
L1_WEIGHT = 10.0


@dataclass(frozen=True)
class WindowBatch:
    """Training windows: what G sees (``drawn``: the target's landmarks at G's size; ``warped``: the shots warped
    onto the target) and what it must make (``real``), (N, C, h, w) in [-1, 1]; ``region`` where it may paint;
    ``person`` indexes a row of psi (one per person or video)."""

    drawn: torch.Tensor
    warped: torch.Tensor
    real: torch.Tensor
    region: torch.Tensor
    person: torch.Tensor

    def __len__(self) -> int:
        return len(self.real)

    def rows(self, index: torch.Tensor) -> WindowBatch:
        return WindowBatch(*(t[index] for t in (self.drawn, self.warped, self.real, self.region, self.person)))

    def to(self, device: torch.device) -> WindowBatch:
        return WindowBatch(*(t.to(device) for t in (self.drawn, self.warped, self.real, self.region, self.person)))

    @staticmethod
    def cat(batches: list[WindowBatch]) -> WindowBatch:
        return WindowBatch(*(torch.cat(parts) for parts in zip(*((b.drawn, b.warped, b.real, b.region, b.person)
                                                                  for b in batches))))


def window_batch(frames: torch.Tensor, warped: torch.Tensor, points: torch.Tensor, person: int, model_size: int
                 ) -> WindowBatch:
    """The windows of (B, 3, S, S) real ``frames`` and their ``warped`` textures around (B, 68, 2) ``points``."""
    local = training_points(points)
    corners = np.zeros((len(points), 2))
    return WindowBatch(drawings(local, corners, model_size / TRAINING_WINDOW, model_size),
                       training_windows(warped, points), training_windows(frames, points),
                       paint_region(local, TRAINING_WINDOW), torch.full((len(points),), person, dtype=torch.long))


def open_targets(points: np.ndarray, candidates: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``limit`` of ``candidates`` (frame indices) whose mouths are open enough to be repainted."""
    opened = candidates[mouth_opening(points[candidates]) > OPEN_FROM]
    return rng.choice(opened, size=min(limit, len(opened)), replace=False) if len(opened) else opened


def video_windows(frames: np.ndarray, points: np.ndarray, k: int, targets_per_video: int, person: int,
                  model_size: int, rng: np.random.Generator) -> tuple[WindowBatch, np.ndarray] | None:
    """Meta-learning's episode from one video ((T, S, S, 3) uint8, (T, 68, 2)): K shots of its first half, its
    second half's open mouths as targets. Returns the windows and the shots' indices (None: no open mouth)."""
    half = len(frames) // 2
    shots = rng.choice(half, size=min(k, half), replace=False)
    targets = open_targets(points, np.arange(half, len(frames)), targets_per_video, rng)
    if not len(targets):
        return None
    images, pts = images_to_tensor(frames), torch.from_numpy(np.asarray(points, np.float32))
    warped = warp_from_bank(images[shots], pts[shots], pts[targets], frames.shape[1])
    return window_batch(images[targets], warped, pts[targets], person, model_size), shots


@torch.no_grad()
def embed(embedder: Embedder, frames: np.ndarray, points: np.ndarray) -> torch.Tensor:
    """e: the embedder's mean embedding of (K, S, S, 3) uint8 shots with their (K, 68, 2) landmarks, (1, D)."""
    return embedder.embed_person(*to_network(frames, points, embedder.config.image_size))[None]


def mouth_loss(generator: Generator, psi: torch.Tensor, batch: WindowBatch) -> torch.Tensor:
    """L1 in the paint region (x ``L1_WEIGHT``) + 1 - SSIM over the window, of G's repainted windows."""
    out = generator(batch.drawn, psi=psi, warped=batch.warped, paint_region=batch.region)
    region = batch.region.expand_as(out)
    l1 = ((out - batch.real).abs() * region).sum() / region.sum().clamp_min(1.0)
    return L1_WEIGHT * l1 + (1 - ssim(out, batch.real))


def leave_one_out_windows(images: torch.Tensor, points: torch.Tensor, model_size: int, rng: np.random.Generator,
                          pseudo_sources: int = 8) -> WindowBatch | None:
    """Fine-tuning's windows: each open-mouthed shot of (K, 3, S, S) ``images`` re-drawn from the other shots
    (K = 1: from itself moved, ``pseudo_sources`` times). None when no shot shows an open mouth: there is
    nothing of the person's own inside of the mouth to learn from."""
    opened = np.flatnonzero(mouth_opening(points.numpy()) > OPEN_FROM)
    if not len(opened):
        return None
    chosen = np.repeat(opened, pseudo_sources) if len(images) == 1 else opened
    index = torch.as_tensor(chosen)
    warped = training_textures(images, points, index, rng)
    return window_batch(images[index], warped, points[index], 0, model_size)


def finetune_mouth(generator: Generator, embedding: torch.Tensor, windows: WindowBatch | None, steps: int,
                   lr: float = 5e-4, batch_size: int = 8, seed: int = 0) -> PersonalGenerator:
    """The person's mouth generator: psi' = P e, and with ``steps`` (and ``windows``: the shots' leave-one-out
    windows) G' and psi' fine-tuned on them."""
    device = generator.projection.weight.device
    embedding = embedding.to(device)
    with torch.no_grad():
        psi = generator.project(embedding)
    if windows is None or steps <= 0:
        return PersonalGenerator.from_generator(generator, psi, embedding, generator.config)
    tuned = copy.deepcopy(generator).eval()
    tuned.projection.requires_grad_(False)
    psi = torch.nn.Parameter(psi.clone())
    optimizer = torch.optim.Adam([psi, *(p for p in tuned.parameters() if p.requires_grad)], lr=lr, betas=(0.5, 0.999))
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        rows = torch.as_tensor(rng.choice(len(windows), size=min(batch_size, len(windows)), replace=False))
        optimizer.zero_grad(set_to_none=True)
        mouth_loss(tuned, psi, windows.rows(rows).to(device)).backward()
        optimizer.step()
    return PersonalGenerator.from_generator(tuned, psi, embedding, generator.config)


#: Fine-tuning's frames: the shots' bank crops at the scale of a face this many pixels tall, the output size its
#: windows are made at in meta-learning (``MouthTrainOptions.image_size``).
FINETUNE_FACE_SIZE = 256


def personal_mouth(generator: Generator, embedding: torch.Tensor, bank_crops: np.ndarray, bank_landmarks: np.ndarray,
                   steps: int, seed: int = 0) -> PersonalGenerator:
    """The person's mouth generator from their shots' bank (``Avatar.bank_crops``, ``bank_landmarks``): psi' = P e,
    fine-tuned for ``steps`` on the shots' leave-one-out windows (:func:`finetune_mouth`)."""
    embedding = embedding.detach().cpu().reshape(1, -1)
    if steps <= 0:
        return finetune_mouth(generator, embedding, None, 0)
    offset, side = BANK_FRAME
    window = slice(int(offset), int(offset + side))
    frames = np.stack([cv2.resize(crop[window, window], (FINETUNE_FACE_SIZE, FINETUNE_FACE_SIZE),
                                  interpolation=cv2.INTER_AREA) for crop in bank_crops])
    points = torch.from_numpy(((bank_landmarks - offset) * (FINETUNE_FACE_SIZE / side)).astype(np.float32))
    windows = leave_one_out_windows(images_to_tensor(frames), points, generator.config.image_size,
                                    np.random.default_rng(seed))
    return finetune_mouth(generator, embedding, windows, steps, seed=seed)
