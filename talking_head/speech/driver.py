"""The mouth's and head's tracks -> 68 landmarks in the photo's own face: a "driver" for the driving path.

Each frame is the photo's landmarks moved as ``data.synthetic_face.expression_layout`` moves a synthetic
face (the lower lip and the corners down with the opening, the corners in and the lips out with rounding,
brows up, upper lids down), along the face's own axes and in eye distances, then turned and shifted as the
head moves. ``Retargeter`` (relative, the photo's landmarks its reference) then passes the motion on as it
passes a video driver's, with its damping of head travel and its absolute mouth gap: the gap drawn here is
the gap rendered, so a closure is a closure.
"""

from __future__ import annotations

import numpy as np

from talking_head.data.synthetic_face import LOWER_LIDS, UPPER_LIDS
from talking_head.landmarks.align import LOWER_LIP_POINTS, RIGID_POINTS, face_axes, inter_ocular_distance, mouth_gap
from talking_head.speech.liveliness import HeadTracks
from talking_head.speech.tracks import MouthTracks

MOUTH = np.arange(48, 68)
CORNERS = [48, 54, 60, 64]
UPPER_OUTER, LOWER_OUTER = [49, 50, 51, 52, 53], [55, 56, 57, 58, 59]
BROWS = np.arange(17, 27)
#: How far each motion goes at full strength, in eye distances: the corners' drop with the opening (a share of
#: the lower lip's), the outer lips' push apart on rounding, the brows' rise.
CORNER_DROP = 0.35
ROUNDING_PUSH = 0.06
BROW_RISE = 0.12


def face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Unit vectors across (right eye to left) and down the face (``align``'s), and the eye distance."""
    return *face_axes(points), inter_ocular_distance(points)


def shape_mouth(points: np.ndarray, opening: float, rounding: float) -> np.ndarray:
    """``points`` (68, 2) with the inner lips ``opening`` eye distances apart and rounded by ``rounding``."""
    across, down, eye = face_frame(points)
    out = points.copy()
    drop = opening * eye - mouth_gap(points)
    out[list(LOWER_LIP_POINTS)] += drop * down
    out[CORNERS] += CORNER_DROP * max(drop, 0.0) * down
    centre = out[MOUTH].mean(0)
    sideways = (out[MOUTH] - centre) @ across
    spread = np.abs(sideways) / max(np.abs(sideways).max(), 1e-6)
    pull = np.where(MOUTH >= 60, 0.5 * spread, 0.3 * spread ** 2)  # the opening rounds more than the lips around it
    out[MOUTH] -= np.outer(sideways * rounding * pull, across)
    out[UPPER_OUTER] -= ROUNDING_PUSH * rounding * eye * down
    out[LOWER_OUTER] += ROUNDING_PUSH * rounding * eye * down
    return out


def shape_eyes_and_brows(points: np.ndarray, blink: float, brows: float) -> np.ndarray:
    """``points`` with the upper lids ``blink`` of the way down to the lower ones and the brows raised."""
    _, down, eye = face_frame(points)
    out = points.copy()
    out[UPPER_LIDS] += (out[LOWER_LIDS] - out[UPPER_LIDS]) * blink
    out[BROWS] -= BROW_RISE * brows * eye * down
    return out


def pose_head(points: np.ndarray, yaw: float, pitch: float, roll: float) -> np.ndarray:
    """``points`` turned as a head is by small angles, seen from the front: rolled in the image, squeezed across
    by a turn and down by a nod, and moved by as much as the face's front travels (about an eye distance of
    depth in front of the turning axis)."""
    across, down, eye = face_frame(points)
    centre = points[list(RIGID_POINTS)].mean(0)
    local = np.stack([(points - centre) @ across, (points - centre) @ down], -1)
    local *= (np.cos(yaw), np.cos(pitch))
    local += (np.sin(yaw) * eye, np.sin(pitch) * eye)
    turn = np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
    local = local @ turn.T
    return centre + np.outer(local[:, 0], across) + np.outer(local[:, 1], down)


def driver_frame(reference: np.ndarray, mouth: MouthTracks, head: HeadTracks, index: int) -> np.ndarray:
    """Frame ``index`` of the driver: (68, 2) float32 in the reference's pixels."""
    points = shape_mouth(np.asarray(reference, np.float64), mouth.opening[index], mouth.rounding[index])
    points = shape_eyes_and_brows(points, head.blink[index], head.brows[index])
    return pose_head(points, head.yaw[index], head.pitch[index], head.roll[index]).astype(np.float32)
