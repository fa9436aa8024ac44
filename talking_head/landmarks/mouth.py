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


#: Each inner lip from corner to corner: the upper one left to right, the lower one back (a closed outline).
INNER_LIP_CHAINS = ((60, 61, 62, 63, 64), (64, 65, 66, 67, 60))
#: Uniform Catmull-Rom: a segment's point at t from its four control points, (t^3, t^2, t, 1) @ this @ (P0..P3).
_CATMULL_ROM = 0.5 * np.array([[-1.0, 3.0, -3.0, 1.0], [2.0, -5.0, 4.0, -1.0], [-1.0, 0.0, 1.0, 0.0],
                               [0.0, 2.0, 0.0, 0.0]])


def inner_lip_outline(landmarks: np.ndarray, steps: int = 6) -> np.ndarray:
    """(..., 68, 2) -> (..., 8 * steps, 2): the inside of the mouth as a closed curve through its eight landmarks.

    Each lip is a Catmull-Rom spline through its five points, corner to corner, so an open mouth is drawn with
    round lips instead of an octagon of straight edges (visible at 512 px), and pointed where the lips meet at the
    corners, as lips are. ``steps`` points per segment, the landmarks among them (every ``steps``-th)."""
    points = np.asarray(landmarks, np.float64)
    t = np.arange(steps) / steps
    weights = np.stack([t ** 3, t ** 2, t, np.ones_like(t)], axis=-1) @ _CATMULL_ROM  # (steps, 4)
    outline = []
    for chain in INNER_LIP_CHAINS:
        lip = points[..., list(chain), :]
        ends = (2 * lip[..., :1, :] - lip[..., 1:2, :], 2 * lip[..., -1:, :] - lip[..., -2:-1, :])  # mirrored
        padded = np.concatenate([ends[0], lip, ends[1]], axis=-2)  # (..., 7, 2)
        for segment in range(len(chain) - 1):
            outline.append(np.einsum("sk,...kd->...sd", weights, padded[..., segment:segment + 4, :]))
    return np.concatenate(outline, axis=-2)
