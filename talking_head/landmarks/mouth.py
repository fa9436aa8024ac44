"""The mouth's shape in 68 iBUG landmarks, in eye distances (the face-size measure least changed by expression).

One place for what every judge of the mouth measures: the renderer's tests, ``evaluate`` and the benchmarks
that hold the output's mouth against the driver's. Opening is what a jaw does; width (corner to corner) is
what a smile widens and an "O" narrows: a talking head has to follow both.
"""

from __future__ import annotations

import numpy as np

from talking_head.landmarks.align import INNER_LIP_PAIRS

#: The outer corners of the mouth.
MOUTH_CORNERS = (48, 54)


def eye_distance(landmarks: np.ndarray) -> np.ndarray:
    """(..., 68, 2) -> (...,): the distance between the eye centres."""
    landmarks = np.asarray(landmarks, np.float64)
    return np.linalg.norm(landmarks[..., 36:42, :].mean(-2) - landmarks[..., 42:48, :].mean(-2), axis=-1)


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """(..., 68, 2) -> (...,): the inner lips' gap (mean of three point pairs) over the eye distance."""
    landmarks = np.asarray(landmarks, np.float64)
    upper, lower = zip(*INNER_LIP_PAIRS)
    gap = np.linalg.norm(landmarks[..., list(upper), :] - landmarks[..., list(lower), :], axis=-1).mean(-1)
    return gap / np.maximum(eye_distance(landmarks), 1e-6)


def mouth_width(landmarks: np.ndarray) -> np.ndarray:
    """(..., 68, 2) -> (...,): the outer corners' distance over the eye distance."""
    landmarks = np.asarray(landmarks, np.float64)
    left, right = MOUTH_CORNERS
    width = np.linalg.norm(landmarks[..., left, :] - landmarks[..., right, :], axis=-1)
    return width / np.maximum(eye_distance(landmarks), 1e-6)
