"""The face layer: landmarks in, face pixels out, the same for ``animate`` and live mode.

An avatar's shots warped onto target landmarks (``texture_for``), and where asked (or on a pure-synthesis
avatar, always) the learned generator over the warp, in the runtime ``GeneratorRuntime`` picks, in batches that
halve on GPU out-of-memory (``BatchGenerator``). The video around the faces (decoding, tracking, layout,
paste-back, captions, encoding and the threaded pipeline) is ``talking_head.render``'s.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import torch

from talking_head.avatar import Avatar
from talking_head.generator_runtime import GeneratorRuntime
from talking_head.landmarks.rasterize import draw_landmarks
from talking_head.mouth_window import refine_mouths
from talking_head.shot_bank import BANK_FRAME, paint_region, warp_from_bank
from talking_head.tensors import images_to_tensor, tensor_to_images
from talking_head.warp import GRID_SIZE

logger = logging.getLogger(__name__)

#: Whether the learned generator paints over the warp (inside the mouth) unless asked otherwise. Off: on real
#: talking video the warp alone scored at least as well at K = 1 and 8, feed-forward and fine-tuned (mouth SSIM
#: 0.770 vs 0.750 at K = 1, 0.801 vs 0.773 feed-forward and 0.798 fine-tuned at K = 8, self-reenactment of a real
#: clip), and dlib's real-photo judge saw no gain, while G took half of the rendering time (docs/generator.md).
GENERATOR_BY_DEFAULT = False
#: Whether the mouth-window generator repaints open mouths unless asked otherwise (where the avatar has one). Off
#: until it beats the warp on real faces (docs/mouth.md): it learnt the mouth on synthetic heads.
MOUTH_BY_DEFAULT = False


def unused_finetuning(steps: int, generator: bool, mouth: bool = MOUTH_BY_DEFAULT) -> str | None:
    """What to tell a person who asked for fine-tuning steps with both learned generators off (the steps train only
    them, so the frames would not change), or None."""
    if steps > 0 and not generator and not mouth:
        return (f"{steps} fine-tuning steps train the learned generators, which are off: turn one on to render with "
                f"it (the warp alone is the default)")
    return None


def texture_for(avatar: Avatar, targets: np.ndarray, size: int, grid_size: int = GRID_SIZE) -> torch.Tensor:
    """The avatar's shots warped onto (T, 68, 2) targets (crop pixels): (T, 3, size, size) in [-1, 1].

    Per target, the face comes from the shot posed most like it and the mouth from the shot whose
    mouth is most like it; the bank (a ``BANK_SIZE`` crop with a margin of the photo around it) is
    sampled once, at the output's size. ``grid_size``: see ``warp.sampling_map``.
    """
    bank_points = torch.from_numpy(np.asarray(avatar.bank_landmarks, np.float32))
    out_points = torch.from_numpy(targets * np.float32(size / avatar.image_size))
    return warp_from_bank(avatar.bank_images, bank_points, out_points, size, mode="bicubic", frame=BANK_FRAME,
                          grid_size=grid_size)


class BatchGenerator:
    """Runs an avatar's generator on batches (in the runtime ``GeneratorRuntime`` picks), halving the batch on
    CUDA out-of-memory instead of failing."""

    def __init__(self, avatar: Avatar, batch_size: int) -> None:
        self.avatar, self.batch_size = avatar, batch_size
        self.runtime = GeneratorRuntime(avatar.generator)

    def __call__(self, landmark_images: torch.Tensor, warped: torch.Tensor | None = None,
                 paint_region: torch.Tensor | None = None) -> torch.Tensor:
        outputs, start = [], 0
        while start < landmark_images.shape[0]:
            end = start + self.batch_size
            try:
                chunks = (t[start:end] if t is not None else None for t in (warped, paint_region))
                outputs.append(self.runtime(landmark_images[start:end], *chunks).cpu())
            except torch.cuda.OutOfMemoryError:
                if self.batch_size == 1:
                    raise
                self.batch_size //= 2
                torch.cuda.empty_cache()
                logger.warning("GPU out of memory: rendering in batches of %d", self.batch_size)
                continue
            start = end
        return torch.cat(outputs)


def render_faces(avatar: Avatar, targets: np.ndarray, size: int, generate: BatchGenerator | None = None,
                 generator: bool = GENERATOR_BY_DEFAULT, mouth: bool = MOUTH_BY_DEFAULT) -> np.ndarray:
    """The avatar's face on (T, 68, 2) targets (crop pixels): (T, size, size, 3) uint8; the warp
    (:func:`texture_for`, on the texture path), then :func:`finish_faces`."""
    warped = texture_for(avatar, targets, size) if avatar.texture_path else None
    return finish_faces(avatar, targets, size, warped, generate, generator, mouth)


def finish_faces(avatar: Avatar, targets: np.ndarray, size: int, warped: torch.Tensor | None,
                 generate: BatchGenerator | None = None, generator: bool = GENERATOR_BY_DEFAULT,
                 mouth: bool = MOUTH_BY_DEFAULT) -> np.ndarray:
    """The faces shown for (T, 68, 2) targets given their warp: the warp itself, its open mouths repainted with
    ``mouth`` (where the avatar has a mouth generator), then with ``generator`` (and always without a warp: a
    pure-synthesis avatar) :func:`generate_faces`. (T, size, size, 3) uint8."""
    if warped is not None and mouth and avatar.mouth is not None:
        warped = refine_mouths(avatar.mouth, warped, torch.from_numpy(targets * np.float32(size / avatar.image_size)))
    if warped is not None and not generator:
        return tensor_to_images(warped)
    return generate_faces(avatar, targets, size, warped, generate)


def generate_faces(avatar: Avatar, targets: np.ndarray, size: int, warped: torch.Tensor | None,
                   generate: BatchGenerator | None = None) -> np.ndarray:
    """The generator's faces on (T, 68, 2) targets given their warp (None: pure synthesis), (T, size, size, 3) uint8.

    On the texture path the generator's mask blends its painting into the warped shots at ``size``,
    inside the mouth only (``shot_bank.paint_region``); the pure-synthesis generator draws at its own
    resolution, resized to ``size``.
    """
    generate = generate or BatchGenerator(avatar, len(targets))
    drawings = np.stack([draw_landmarks(t, avatar.image_size) for t in targets])
    region = (paint_region(torch.from_numpy(targets * np.float32(size / avatar.image_size)), size)
              if warped is not None else None)
    faces = tensor_to_images(generate(images_to_tensor(drawings), warped, region))
    if faces.shape[1] != size:
        faces = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR) for f in faces])
    return faces
