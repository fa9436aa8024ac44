"""Facial landmarks: detection (68 iBUG points), rasterization (the paper's coloured polylines),
cropping, smoothing and retargeting."""

from talking_head.landmarks.rasterize import LANDMARK_PARTS, draw_landmarks

__all__ = ["LANDMARK_PARTS", "draw_landmarks"]
