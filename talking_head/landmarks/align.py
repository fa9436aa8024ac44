"""Where a face sits in a frame, how landmarks move over time, and whose face shape they carry.

- The crop convention shared by the whole system (datasets, synthetic renderer, fine-tuning, paste
  back): a square around the 68 landmarks, the landmarks' box filling ``FACE_FRACTION`` of its side,
  shifted up by ``VERTICAL_OFFSET`` of its side so the forehead and some hair are in view.
- ``retarget``: the driver's motion on the source's face. The paper feeds the driver's own landmarks,
  which carry the driver's face shape into the result (its "identity gap"); the ``"relative"`` mode
  applies only the driver's *motion* (head pose and expression) to the source's landmarks.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from talking_head.landmarks.detect import to_rgb_uint8

#: The 68-point bounding box fills this fraction of the crop's side.
FACE_FRACTION = 0.55
#: The crop's centre sits this fraction of its side above the landmarks' box centre.
VERTICAL_OFFSET = 0.05

#: Points that move with the head but hardly with expression (jaw ends at the ears, nose, eye
#: corners): head pose is measured on these, so opening the mouth does not read as a head motion.
RIGID_POINTS = (0, 16, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45)
RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)
#: How a driver's landmarks reach the photo's face (``retarget``): the first is every default (``RenderConfig``'s,
#: live mode's, the app's), relative motion being what users of talking-head tools ask for most.
RETARGET_MODES = ("relative", "absolute")
DEFAULT_RETARGET = RETARGET_MODES[0]

CropBox = tuple[float, float, float]  # (x0, y0, side) in image pixels


def as_landmarks(landmarks: np.ndarray, name: str = "landmarks") -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"{name} must be a (68, 2) array of (x, y), got shape {points.shape}")
    return points


# ------------------------------------------------------------------------------------------ crop
def crop_box(landmarks: np.ndarray) -> CropBox:
    """The square crop ``(x0, y0, side)`` of a face, in the pixels of the image the landmarks are in."""
    points = as_landmarks(landmarks)
    low, high = points.min(axis=0), points.max(axis=0)
    side = float(max(high - low)) / FACE_FRACTION
    if side <= 0:
        raise ValueError("landmarks are all at one point: cannot place a crop around them")
    cx, cy = (low + high) / 2
    cy -= VERTICAL_OFFSET * side
    return float(cx - side / 2), float(cy - side / 2), side


def to_crop_coords(landmarks: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Image pixel coordinates -> pixel coordinates of the ``size x size`` crop ``box``."""
    x0, y0, side = box
    return ((np.asarray(landmarks, dtype=np.float64) - (x0, y0)) * (size / side)).astype(np.float32)


def from_crop_coords(landmarks: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Pixel coordinates of the ``size x size`` crop ``box`` -> image pixel coordinates."""
    x0, y0, side = box
    return (np.asarray(landmarks, dtype=np.float64) * (side / size) + (x0, y0)).astype(np.float32)


def crop_face(image: np.ndarray, landmarks: np.ndarray, size: int, box: CropBox | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Cut the face out as a ``size x size`` RGB uint8 crop; returns (crop, landmarks in crop pixels).

    ``box`` defaults to ``crop_box(landmarks)``; pass one to crop every frame of a clip alike. Where
    the box leaves the image the border pixels are repeated (a black band would teach the generator
    to draw black bands).
    """
    image = to_rgb_uint8(image)
    x0, y0, side = box or crop_box(landmarks)
    scale = size / side
    # A bilinear warp that shrinks more than 2x aliases (stair-stepped hair, moire on clothes), so
    # first shrink by an integer factor with area averaging; pixel j of the shrunk image is centred
    # on pixel j*k + (k-1)/2 of the original.
    k = int(1 / scale) if scale < 0.5 else 1
    offset = 0.0
    if k > 1:
        height, width = (image.shape[0] // k) * k, (image.shape[1] // k) * k
        image = cv2.resize(image[:height, :width], (width // k, height // k), interpolation=cv2.INTER_AREA)
        offset = (k - 1) / 2
    matrix = np.array([[k * scale, 0.0, (offset - x0) * scale],
                       [0.0, k * scale, (offset - y0) * scale]])
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop, to_crop_coords(landmarks, (x0, y0, side), size)


# ----------------------------------------------------------------------------------- retargeting
def inter_ocular_distance(landmarks: np.ndarray) -> float:
    """Distance between the eye centres: the face-size measure least changed by expression."""
    points = np.asarray(landmarks, dtype=np.float64)
    return float(np.linalg.norm(points[LEFT_EYE].mean(axis=0) - points[RIGHT_EYE].mean(axis=0)))


def _complex(points: np.ndarray) -> np.ndarray:
    return points[:, 0] + 1j * points[:, 1]


def _rotation(src: np.ndarray, dst: np.ndarray) -> complex:
    """The unit complex number rotating ``src`` onto ``dst`` best (least squares, centred)."""
    src, dst = src - src.mean(), dst - dst.mean()
    product = complex(np.sum(np.conj(src) * dst))
    return product / abs(product) if abs(product) > 0 else 1.0


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[complex, complex]:
    """Least-squares similarity ``z -> a z + b`` taking complex points ``src`` onto ``dst``."""
    src_c, dst_c = src - src.mean(), dst - dst.mean()
    a = complex(np.sum(np.conj(src_c) * dst_c) / max(np.sum(np.abs(src_c) ** 2), 1e-12))
    return a, complex(dst.mean() - a * src.mean())


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The (2, 3) least-squares similarity (rotation, uniform scale, shift) taking (N, 2) points ``src``
    onto ``dst``, for ``cv2.warpAffine``: e.g. one frame's face onto another's by their eyes and nose."""
    a, b = _similarity(_complex(np.asarray(src, np.float64)), _complex(np.asarray(dst, np.float64)))
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


#: Inner-lip pairs (upper, lower), and the points that move down with the lower lip (with the jaw's
#: share of the motion: the chin all of it, the jaw less towards the ears).
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
LOWER_LIP_POINTS = (55, 56, 57, 58, 59, 65, 66, 67)
JAW_SHARE = {5: 0.3, 6: 0.6, 7: 0.9, 8: 1.0, 9: 0.9, 10: 0.6, 11: 0.3}
BROWS, EYES, MOUTH = tuple(range(17, 27)), tuple(range(36, 48)), tuple(range(48, 68))
#: How much of the driver's out-of-plane head rotation (the foreshortening that yaw and pitch put into
#: the 2-D landmarks: one side of the face narrower) passes on. A 2-D warp of a photo cannot turn a
#: head, only squeeze one side of it.
POSE_FORESHORTENING = 0.5
#: How much of the driver's head translation and zoom (in its own frame) passes on: a head that moves
#: far stretches the photo between it and the crop's pinned border (hair pulled into streaks).
HEAD_TRAVEL = 0.5
#: How much of the brows' raising (relative to the eyes) passes on; lowering does not. A driver's
#: nod moves its brows against its eyes by depth parallax: passed on, it pressed the photo's brows
#: onto its eyes (dlib then lost the face in up to 29 % of frames of a nodding driver).
BROW_STRENGTH = 0.5
#: The photo's mouth width over the driver's first frame's (each in its own eye distances) scales the driver's
#: mouth motion across the face, kept within this range (a wrong detection must not multiply a motion tenfold).
MOUTH_WIDTH_RATIO_RANGE = (0.67, 1.5)


def face_axes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors along the eyes (right to left eye) and down the face, in image pixels (y down)."""
    right, left = points[RIGHT_EYE].mean(axis=0), points[LEFT_EYE].mean(axis=0)
    across = (left - right) / max(float(np.linalg.norm(left - right)), 1e-6)
    return across, np.array([-across[1], across[0]])


def mouth_gap(points: np.ndarray) -> float:
    """The inner lips' opening (lower minus upper, along the face's down axis), in pixels; < 0 if crossed."""
    _, down = face_axes(points)
    return float(np.mean([(points[lower] - points[upper]) @ down for upper, lower in INNER_LIP_PAIRS]))


def _open_mouth(points: np.ndarray, gap: float) -> np.ndarray:
    """``points`` with the lower lip (and the jaw, by its share) moved so the inner-lip gap is ``gap``."""
    _, down = face_axes(points)
    move = (gap - mouth_gap(points)) * down
    out = points.copy()
    out[list(LOWER_LIP_POINTS)] += move
    for index, share in JAW_SHARE.items():
        out[index] += share * move
    return out


def _affine(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares affine map ``z -> M z + t`` taking (N, 2) ``src`` onto ``dst``: (M (2, 2), t (2,)).

    A detection collapsed to a line or a point has no invertible affine map: the least-squares
    similarity stands in (identity, moved to the points' centre, if even that has no scale).
    """
    design = np.concatenate([src, np.ones((len(src), 1))], axis=1)
    solution, *_ = np.linalg.lstsq(design, dst, rcond=None)
    matrix, shift = solution[:2].T, solution[2]
    spread = float(np.square(src - src.mean(axis=0)).sum(axis=1).mean())
    if abs(np.linalg.det(matrix)) > 1e-3 and spread > 0:
        return matrix, shift
    a, b = _similarity(_complex(src), _complex(dst))
    if abs(a) < 1e-3:
        a, b = 1.0, complex(*(dst.mean(axis=0) - src.mean(axis=0)))
    return np.array([[a.real, -a.imag], [a.imag, a.real]]), np.array([b.real, b.imag])


def _damp_head_motion(matrix: np.ndarray, foreshortening: float, zoom: float) -> np.ndarray:
    """``matrix`` (2, 2) with its foreshortening raised to ``foreshortening`` and its zoom to ``zoom``
    (0: none passes on, 1: unchanged); its rotation (roll) is kept whole.

    Polar decomposition M = R P (R a rotation, P symmetric positive): P's eigenvalues over their
    geometric mean s are the foreshortening, s the zoom.
    """
    u, singular, vt = np.linalg.svd(matrix)
    if np.linalg.det(matrix) <= 0 or singular[-1] <= 1e-9:
        return matrix  # a reflection or a collapse is no head pose: nothing to damp
    s = math.sqrt(singular[0] * singular[1])
    return (u @ vt) @ (vt.T * (s ** zoom * (singular / s) ** foreshortening)) @ vt


def _expression(residual: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The expression in a (68, 2) residual: the driver's motion beyond its head's, in its reference pose.

    Out-of-plane rotation leaves a residual that an affine head motion does not explain (depth
    parallax: the nose, the far cheek and the brows shift against the eyes). So the nose and jaw get
    none (the jaw follows the mouth's opening, set apart), the eyes and mouth lose their mean sideways
    drift, and the brows only rise, by ``BROW_STRENGTH`` of their rise against the eyes.
    """
    across, down = face_axes(reference)
    out = np.zeros_like(residual)
    for region in (EYES, MOUTH):
        moved = residual[list(region)]
        out[list(region)] = moved - np.outer(moved.mean(axis=0) @ across, across)
    lift = -float((residual[list(BROWS)] - residual[list(EYES)].mean(axis=0)).mean(axis=0) @ down)
    out[list(BROWS)] = -BROW_STRENGTH * max(0.0, lift) * down
    return out


def mouth_width_ratio(source: np.ndarray, reference: np.ndarray) -> float:
    """The photo's mouth width (corner 48 to 54) over the driver's reference one, each in its own eye distances,
    clipped to ``MOUTH_WIDTH_RATIO_RANGE``."""
    def width(points: np.ndarray) -> float:
        return float(np.linalg.norm(points[54] - points[48])) / max(inter_ocular_distance(points), 1e-6)
    return float(np.clip(width(source) / max(width(reference), 1e-6), *MOUTH_WIDTH_RATIO_RANGE))


def _scale_mouth_across(expression: np.ndarray, reference: np.ndarray, ratio: float) -> np.ndarray:
    """``expression`` with its mouth's motion across the face times ``ratio``.

    A mouth narrows and widens by a share of its width (the lips' ring muscle draws the corners in, the smile's
    muscles pull them out): a smiling photo's corners, further apart than the driver's, have further to go to an
    "O". Added as the driver's displacement, an "O" left her mouth a wide smile-shaped opening (dlib's width r
    0.26-0.44 against the driver's on held-out synthetic drivers).
    """
    across, _ = face_axes(reference)
    out = expression.copy()
    mouth = list(MOUTH)
    out[mouth] += np.outer(expression[mouth] @ across, across) * (ratio - 1)
    return out


def retarget(source: np.ndarray, driver_reference: np.ndarray, driver_current: np.ndarray,
             mode: str = DEFAULT_RETARGET) -> np.ndarray:
    """The source's landmarks moved as the driver moved from ``driver_reference`` to ``driver_current``.

    All three are (68, 2) in one coordinate frame (crop pixels). The driver's reference is aligned
    onto the source by a similarity: rotation from the rigid points, scale from the ratio of
    inter-ocular distances.

    - ``"relative"`` (first-order-model's relative motion, made shape-preserving and fit for a 2-D
      warp): the driver's motion is split into a head motion (an affine map fitted on
      ``RIGID_POINTS``) and an expression (``_expression``: what is left, in the reference pose). The
      expression, rescaled to the source (the mouth's motion across the face by the ratio of the mouths' widths,
      ``mouth_width_ratio``), is added to the source's landmarks, and the mouth opens as
      far as the driver's does (inner-lip gap in eye distances: absolute, so a driver whose first frame
      is open can still close a smiling photo's mouth, and never past closed). The head motion is then
      applied, its roll whole, its foreshortening (``POSE_FORESHORTENING``), travel and zoom
      (``HEAD_TRAVEL``) damped. The source keeps its face shape.
    - ``"absolute"`` (the paper): the driver's current landmarks, aligned onto the source by the
      reference alignment; they carry the driver's face shape.
    """
    source = as_landmarks(source, "source")
    reference = as_landmarks(driver_reference, "driver_reference")
    current = as_landmarks(driver_current, "driver_current")
    rigid = list(RIGID_POINTS)
    src, ref = _complex(source), _complex(reference)
    scale = inter_ocular_distance(source) / max(inter_ocular_distance(reference), 1e-6)
    turn = _rotation(ref[rigid], src[rigid])
    a_ref = scale * turn
    b_ref = src[rigid].mean() - a_ref * ref[rigid].mean()  # reference driver -> source: z -> a_ref z + b_ref
    align = np.array([[a_ref.real, -a_ref.imag], [a_ref.imag, a_ref.real]])
    offset = np.array([b_ref.real, b_ref.imag])
    if mode == "absolute":
        return (current @ align.T + offset).astype(np.float32)
    if mode not in RETARGET_MODES:
        raise ValueError(f"unknown retargeting mode {mode!r}: choose one of {RETARGET_MODES}")
    head, shift = _affine(reference[rigid], current[rigid])  # the driver's head motion
    unposed = (current - shift) @ np.linalg.inv(head).T  # the driver's current face in its reference pose
    expression = _scale_mouth_across(_expression(unposed - reference, reference), reference,
                                     mouth_width_ratio(source, reference))
    posed = source + expression @ align.T
    gap = max(0.0, mouth_gap(unposed)) / max(inter_ocular_distance(reference), 1e-6) * inter_ocular_distance(source)
    posed = _open_mouth(posed, gap)
    # The chin follows the mouth's opening against the photo's own, not against the lips the expression left:
    # a driver closing from an open first frame moves its lower lip up (the jaw gets no expression), and
    # reopening those crossed lips to the gap had pushed the chin down by as much (the face 12 % longer).
    jaw = list(JAW_SHARE)
    posed[jaw] = _open_mouth(source, gap)[jaw]
    # The head motion in the source's frame (conjugated by the reference alignment), damped about the
    # rigid points' centre.
    centre = reference[rigid].mean(axis=0)
    moved = centre + HEAD_TRAVEL * (head @ centre + shift - centre)
    rotation = np.array([[turn.real, -turn.imag], [turn.imag, turn.real]])  # conjugating by align: its scale cancels
    motion = rotation @ _damp_head_motion(head, POSE_FORESHORTENING, HEAD_TRAVEL) @ rotation.T
    return ((posed - (align @ centre + offset)) @ motion.T + (align @ moved + offset)).astype(np.float32)


class Retargeter:
    """Streaming ``retarget``: the reference is the supplied neutral frame, else the first driver frame."""

    def __init__(self, source: np.ndarray, mode: str = DEFAULT_RETARGET, reference: np.ndarray | None = None) -> None:
        if mode not in RETARGET_MODES:
            raise ValueError(f"unknown retargeting mode {mode!r}: choose one of {RETARGET_MODES}")
        self.source = as_landmarks(source, "source")
        self.mode = mode
        self.reference = None if reference is None else as_landmarks(reference, "reference")

    def __call__(self, driver_current: np.ndarray) -> np.ndarray:
        if self.reference is None:
            self.reference = as_landmarks(driver_current, "driver_current")
        return retarget(self.source, self.reference, driver_current, self.mode)
