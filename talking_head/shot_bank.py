"""The K shots as a texture bank: per target frame and face region, the shot that looks most like it.

With one shot every target is warped from it; with more, the target's head pose is taken from the
shot whose face is posed most like the target's, and its mouth from the shot whose mouth is most
like the target's (open, closed, smiling). So more shots give more poses and mouth states to copy
rather than to invent, and K = 1 / 8 / 32 differ. Likeness is the full Procrustes distance of the
region's landmarks (position, size and in-plane rotation factored out), the warp baseline's measure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from talking_head.warp import CropFrame, warp_to_landmarks

#: The face without the mouth: jaw, brows, nose, eyes (what head pose shows in).
FACE_POINTS = tuple(range(0, 48))
#: Outer and inner lips.
MOUTH_POINTS = tuple(range(48, 68))
#: The side, in pixels, of the face crop inside an avatar's texture bank: the largest output the app
#: offers, so a 512 px face is one sampling of the photo, not an upscaled 128 px crop.
BANK_SIZE = 512
#: Pixels of the photo kept around that crop on every side, for a warp that samples beyond the crop.
#: Made when the warp's forehead and ring points pulled hair down from above the crop (16 px of
#: repeated edge at the top of a 128 px crop for a 12 px nod); with the crop's border pinned at
#: ``warp.BORDER_ANCHORS_PER_SIDE`` anchors a side the map now stays within a pixel of the crop, so
#: the margin is nearly unused. Kept because it is part of the avatar file's layout.
BANK_MARGIN = 64
#: The side of a bank image, and the face crop's place in it (``warp.CropFrame``).
BANK_IMAGE_SIZE = BANK_SIZE + 2 * BANK_MARGIN
BANK_FRAME = (float(BANK_MARGIN), float(BANK_SIZE))
#: The mouth region of the composite: an ellipse around the lips this much larger than their extent.
MOUTH_MASK_SCALE = (1.35, 1.9)
#: The inner lips (corners 60 and 64), and the ellipse over them where the generator may paint.
INNER_LIP_POINTS = tuple(range(60, 68))
PAINT_REGION_SCALE = (1.1, 1.4)


def _centred_complex(landmarks: np.ndarray) -> np.ndarray:
    """(..., N, 2) landmarks as complex numbers, centred and scaled to unit norm."""
    z = landmarks[..., 0].astype(np.float64) + 1j * landmarks[..., 1].astype(np.float64)
    z = z - z.mean(axis=-1, keepdims=True)
    return z / np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


def procrustes_distances(shot_landmarks: np.ndarray, target_landmarks: np.ndarray) -> np.ndarray:
    """Full Procrustes distances in [0, 1] from (K, N, 2) shots to (N, 2) -> (K,), or to (T, N, 2) -> (T, K).

    The residual left after the best similarity (translation, scale, rotation) maps a shot's points
    onto the target's: 0 for the same configuration anywhere in the frame at any size or roll.
    """
    shots, targets = _centred_complex(np.asarray(shot_landmarks)), _centred_complex(np.asarray(target_landmarks))
    overlap = np.abs(targets @ shots.conj().T) ** 2 if targets.ndim == 2 else np.abs(shots.conj() @ targets) ** 2
    return np.sqrt(np.clip(1.0 - overlap, 0.0, None))


@dataclass(frozen=True)
class ShotChoice:
    """Per target: the shot its face is warped from and the shot its mouth is warped from."""

    face: np.ndarray  # (T,) int
    mouth: np.ndarray  # (T,) int


def choose_shots(shot_landmarks: np.ndarray, target_landmarks: np.ndarray, exclude: np.ndarray | None = None
                 ) -> ShotChoice:
    """The nearest shot per region for each of (T, 68, 2) targets among (K, 68, 2) shots.

    ``exclude`` (T,) names one shot per target that may not be chosen (leave-one-out fine-tuning: a
    shot must not be its own texture); it is ignored when K = 1.
    """
    shot_landmarks, target_landmarks = np.asarray(shot_landmarks), np.asarray(target_landmarks)
    choices = []
    for region in (FACE_POINTS, MOUTH_POINTS):
        distances = procrustes_distances(shot_landmarks[:, region], target_landmarks[:, region])  # (T, K)
        if exclude is not None and shot_landmarks.shape[0] > 1:
            distances[np.arange(len(distances)), exclude] = np.inf
        choices.append(distances.argmin(axis=1))
    return ShotChoice(*choices)


def _lip_ellipse(target_points: torch.Tensor, size: int, points: tuple[int, ...], scale: tuple[float, float]
                 ) -> torch.Tensor:
    """A soft ellipse over ``points`` of each target (the first and the middle one are the mouth's corners),
    ``scale`` times their half extent along and across the mouth: (T, 1, size, size) in [0, 1]."""
    lips = target_points[:, list(points)].float()
    centre = lips.mean(dim=1, keepdim=True)
    across = lips[:, len(points) // 2] - lips[:, 0]  # mouth corner to corner
    half_width = across.norm(dim=-1).clamp_min(1.0) / 2
    direction = across / (2 * half_width[:, None])
    normal = torch.stack([-direction[:, 1], direction[:, 0]], dim=-1)
    offsets = lips - centre
    half_height = (offsets @ normal[:, :, None]).abs().amax(dim=(1, 2)).clamp_min(half_width * 0.25)
    axis = torch.arange(size, dtype=torch.float32, device=lips.device)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    d = torch.stack([xs, ys], dim=-1)[None] - centre[:, None]  # (T, size, size, 2)
    u = (d @ direction[:, None, :, None]).squeeze(-1).squeeze(-1) / (scale[0] * half_width)[:, None, None]
    v = (d @ normal[:, None, :, None]).squeeze(-1).squeeze(-1) / (scale[1] * half_height)[:, None, None]
    radius = torch.sqrt(u.square() + v.square())
    return torch.sigmoid((1.0 - radius) * 12.0)[:, None]


def mouth_mask(target_points: torch.Tensor, size: int) -> torch.Tensor:
    """A soft ellipse around each target's lips, where the mouth shot is blended in: (T, 68, 2) output
    pixels -> (T, 1, size, size) in [0, 1]."""
    return _lip_ellipse(target_points, size, MOUTH_POINTS, MOUTH_MASK_SCALE)


def paint_region(target_points: torch.Tensor, size: int) -> torch.Tensor:
    """Where the generator may paint over the warp, (T, 1, size, size): the inside of the mouth.

    The lips stay the photo's own (warped) pixels; between them is what no warp of a shot can show
    as the mouth opens (teeth, tongue, the dark of the mouth). ``target_points`` (T, 68, 2) are in the
    pixels of a ``size`` square output.
    """
    return _lip_ellipse(target_points, size, INNER_LIP_POINTS, PAINT_REGION_SCALE)


def warp_from_bank(images: torch.Tensor, landmarks: torch.Tensor, target_points: torch.Tensor, out_size: int,
                   choice: ShotChoice | None = None, mode: str = "bilinear", frame: CropFrame | None = None
                   ) -> torch.Tensor:
    """The texture for each target: its face shot warped onto it, with its mouth shot's mouth blended in.

    ``images`` (K, 3, S, S) in [-1, 1] with ``landmarks`` (K, 68, 2) in their pixels; ``target_points``
    (T, 68, 2) in output pixels; returns (T, 3, out_size, out_size). ``choice`` defaults to the
    nearest shots (``choose_shots``); ``frame`` places the output crop in the images (``BANK_FRAME``
    for an avatar's bank; default: the whole image).
    """
    if choice is None:
        choice = choose_shots(landmarks.cpu().numpy(), target_points.cpu().numpy())
    face_index = torch.as_tensor(choice.face, device=images.device)
    warped = warp_to_landmarks(images[face_index], landmarks[face_index], target_points, out_size, mode, frame)
    differs = np.flatnonzero(choice.mouth != choice.face)
    if len(differs):
        mouth_index = torch.as_tensor(choice.mouth[differs], device=images.device)
        rows = torch.as_tensor(differs, device=images.device)
        mouths = warp_to_landmarks(images[mouth_index], landmarks[mouth_index], target_points[rows], out_size, mode,
                                   frame)
        mask = mouth_mask(target_points[rows], out_size).to(warped.dtype)
        warped = warped.index_copy(0, rows, mask * mouths + (1 - mask) * warped[rows])
    return warped


def episode_textures(shot_frames: torch.Tensor, shot_points: torch.Tensor, target_points: torch.Tensor
                     ) -> torch.Tensor:
    """Meta-learning: each episode's target built from its own K shots, (B, K, 3, H, W) -> (B, 3, H, W)."""
    return torch.cat([warp_from_bank(frames, points, target[None], frames.shape[-1])
                      for frames, points, target in zip(shot_frames, shot_points, target_points)])
