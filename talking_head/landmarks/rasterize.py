"""Landmark images as the paper draws them: each face part a polyline of its own colour on black.

The generator sees a face *only* through these images, so the drawing must be identical at training
and inference time; this module is the single place that draws them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class LandmarkPart:
    name: str
    indices: tuple[int, ...]
    closed: bool
    color: tuple[int, int, int]  # RGB


#: The 68-point iBUG layout (the order face-alignment and dlib return), one colour per part.
LANDMARK_PARTS: tuple[LandmarkPart, ...] = (
    LandmarkPart("jaw", tuple(range(0, 17)), False, (255, 255, 255)),
    LandmarkPart("right_brow", tuple(range(17, 22)), False, (255, 128, 0)),
    LandmarkPart("left_brow", tuple(range(22, 27)), False, (255, 255, 0)),
    LandmarkPart("nose_bridge", tuple(range(27, 31)), False, (0, 128, 255)),
    LandmarkPart("nose_base", tuple(range(30, 36)), False, (0, 255, 255)),
    LandmarkPart("right_eye", tuple(range(36, 42)), True, (0, 255, 0)),
    LandmarkPart("left_eye", tuple(range(42, 48)), True, (128, 255, 128)),
    LandmarkPart("outer_lip", tuple(range(48, 60)), True, (255, 0, 0)),
    LandmarkPart("inner_lip", tuple(range(60, 68)), True, (255, 0, 255)),
)


def line_thickness(size: int) -> int:
    """One pixel per 128 of image size (at least one), so drawings look alike at every resolution."""
    return max(1, round(size / 128))


def draw_landmarks(landmarks: np.ndarray, size: int | tuple[int, int], thickness: int | None = None) -> np.ndarray:
    """Draw 68 landmarks (x, y in pixels of the target image) as an ``H x W x 3`` uint8 RGB image.

    ``size`` is the output's side (square) or ``(height, width)``. Coordinates may lie outside the
    image: OpenCV clips the lines.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] != 68 or points.shape[1] < 2:
        raise ValueError(f"expected 68 landmarks of (x, y), got shape {points.shape}")
    height, width = (size, size) if isinstance(size, int) else size
    thickness = thickness or line_thickness(min(height, width))
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    # Sub-pixel precision (4 fractional bits) so slow motion draws smoothly instead of in pixel jumps.
    shift = 4
    fixed = np.round(points[:, :2] * (1 << shift)).astype(np.int32)
    for part in LANDMARK_PARTS:
        cv2.polylines(canvas, [fixed[list(part.indices)]], part.closed, part.color, thickness,
                      lineType=cv2.LINE_AA, shift=shift)
    return canvas


def overlay_landmarks(image: np.ndarray, faces: Sequence[np.ndarray]) -> np.ndarray:
    """``image`` (H x W x 3 uint8 RGB) with each face's 68 landmarks drawn over it, as :func:`draw_landmarks`
    draws them: a person sees at a glance whether, and how well, each face was found."""
    out = image.copy()
    for landmarks in faces:
        drawing = draw_landmarks(landmarks, image.shape[:2])
        out = np.where(drawing.any(axis=-1, keepdims=True), drawing, out)
    return out
