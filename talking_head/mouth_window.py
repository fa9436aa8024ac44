"""The mouth's window: where the mouth generator works, cut from the warped face and put back.

The warp keeps a photo's identity everywhere but inside an opened mouth, which no warp of a closed-mouth
photo can show (``shot_bank.mouth_interior`` shades it from the photo's colours instead). The mouth
generator (the paper's AdaIN G at a mouth's small size, ``config.MOUTH_MODEL``) repaints only that:
a square window around the target's lips, ``WINDOW_EYE_DISTANCES`` eye distances wide, cut from the warped
face at the output's own resolution (so the lips keep their pixels, only the network's correction is
upsampled), only on frames whose mouth is open (``OPEN_FROM``), given the inner lips' paint region
(``shot_bank.paint_region``, an ellipse over them, as in training) and kept only between the target's inner lips
(``shot_bank.between_the_lips``): on a real photo the ellipse's rim, over the lips and under the nose, took the
synthetic heads' blue-grey. Every pixel outside the inner lips is the warp's, by construction.

Training (``talking_head.mouth_training``) cuts the same windows, resampled to ``TRAINING_WINDOW`` pixels,
from the warped and the real frames.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from talking_head.landmarks.mouth import eye_distance, mouth_opening
from talking_head.landmarks.rasterize import draw_landmarks
from talking_head.models.personal import PersonalGenerator
from talking_head.shot_bank import between_the_lips, paint_region
from talking_head.tensors import images_to_tensor

#: The window's side in eye distances: an "ah" opens the lips to about 0.6 of them and a grin is about 1 wide.
WINDOW_EYE_DISTANCES = 1.3
#: The inner lips' gap (eye distances) from which a frame's mouth is repainted; a mouth nearer shut shows no
#: inside for the network to improve (the warp draws the seam of shut lips).
OPEN_FROM = 0.03
#: The side every training window is resampled to (about the native window of a 256 px output).
TRAINING_WINDOW = 96


def _eye_distances(points: torch.Tensor) -> torch.Tensor:
    """(B, 68, 2) -> (B,) float32 (``landmarks.mouth.eye_distance``)."""
    return torch.from_numpy(eye_distance(points.detach().cpu().numpy())).float().to(points.device)


def window_side(points: torch.Tensor, frame_size: int) -> int:
    """One window side (pixels) for a batch of (B, 68, 2) targets in a ``frame_size`` square: the largest face's
    (a batch is a fraction of a second of one face), at most the frame."""
    return min(frame_size, max(8, math.ceil(WINDOW_EYE_DISTANCES * float(_eye_distances(points).max()))))


def window_corners(points: torch.Tensor, side: int, frame_size: int) -> np.ndarray:
    """(B, 2) int top-left corners (x, y) of ``side`` windows centred on each target's lips, moved inside the frame."""
    centres = points[:, 48:68].mean(dim=1).detach().cpu().numpy()
    return np.clip(np.round(centres - side / 2), 0, frame_size - side).astype(np.int64)


def open_mouths(points: torch.Tensor) -> np.ndarray:
    """Indices of the (B, 68, 2) targets whose mouths are open enough to repaint (``OPEN_FROM``)."""
    return np.flatnonzero(mouth_opening(points.detach().cpu().numpy()) > OPEN_FROM)


def cut(frames: torch.Tensor, corners: np.ndarray, side: int) -> torch.Tensor:
    """(B, C, H, W) frames -> (B, C, side, side): each frame's window at ``corners``, its own pixels."""
    return torch.stack([frame[:, y:y + side, x:x + side] for frame, (x, y) in zip(frames, corners)])


def drawings(points: torch.Tensor, corners: np.ndarray, scale: float, size: int) -> torch.Tensor:
    """The targets' landmarks drawn as the generator sees them: in window pixels times ``scale``, at ``size``,
    (B, 3, size, size) in [-1, 1]."""
    local = (points.detach().cpu().double().numpy() - corners[:, None, :]) * scale
    return images_to_tensor(np.stack([draw_landmarks(p, size) for p in local]))


def refine_mouths(mouth: PersonalGenerator, warped: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``warped`` (B, 3, S, S) faces in [-1, 1] with their open mouths repainted by ``mouth``; ``points`` (B, 68, 2)
    are the targets in the faces' pixels. Frames with shut mouths, and every pixel outside the windows, are
    returned as they were."""
    rows = open_mouths(points)
    if not len(rows):
        return warped
    size = warped.shape[-1]
    index = torch.as_tensor(rows)
    targets = points[index].float()
    side = window_side(targets, size)
    corners = window_corners(targets, side, size)
    local = targets - torch.as_tensor(corners, dtype=targets.dtype)[:, None, :]
    window = cut(warped[index], corners, side)
    drawn = drawings(targets, corners, mouth.config.image_size / side, mouth.config.image_size)
    repainted = mouth.generate(drawn, window, paint_region(local, side)).to(warped.dtype)
    inside = between_the_lips(local, side).to(warped.dtype)
    repainted = window + inside * (repainted - window)
    out = warped.clone()
    for row, (x, y), face in zip(rows, corners, repainted):
        out[row, :, y:y + side, x:x + side] = face
    return out


def training_windows(frames: torch.Tensor, points: torch.Tensor, size: int = TRAINING_WINDOW) -> torch.Tensor:
    """(B, C, H, W) frames -> (B, C, size, size): the window around each target's lips (``points`` (B, 68, 2), in
    the frames' pixels) resampled to ``size``, bilinear with antialiasing: what training compares."""
    height = frames.shape[-1]
    side = WINDOW_EYE_DISTANCES * _eye_distances(points)
    centre = points[:, 48:68].float().mean(dim=1)
    theta = torch.zeros(len(frames), 2, 3, dtype=frames.dtype, device=frames.device)
    theta[:, 0, 0] = theta[:, 1, 1] = (side / height).to(frames.dtype)
    theta[:, :, 2] = ((centre + 0.5) * 2 / height - 1).to(frames.dtype)  # points at pixel centres, grids at edges
    grid = F.affine_grid(theta, [len(frames), frames.shape[1], size, size], align_corners=False)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)


def training_points(points: torch.Tensor, size: int = TRAINING_WINDOW) -> torch.Tensor:
    """(B, 68, 2) frame pixels -> the same points in ``training_windows``' pixels."""
    side = WINDOW_EYE_DISTANCES * _eye_distances(points)
    centre = points[:, 48:68].float().mean(dim=1)
    return (points.float() - centre[:, None, :]) * (size / side)[:, None, None] + (size - 1) / 2
