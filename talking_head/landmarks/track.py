"""One face followed through consecutive frames: the face detector where it is needed, the 68-point
predictor alone everywhere else.

A face moves little between two frames of a video or a camera, and dlib's HOG detector costs several
times its 68-point predictor (``benchmarks/bench_landmarks.py``). So after a detection the tracker
puts the detector's box, as it sat around the landmarks then, around the last frame's landmarks and
runs the predictor alone in it. The box keeps the detection's size: letting the predictor's own
output set it compounds its bias towards the box (measured on ``examples/driver.mp4``: the box shrank
1-2 % a frame and lost the face within 40 frames), while a size refreshed by each detection does not
drift.

It detects again (the whole frame, searched as the backend searches video frames: ``detect_frame`` where it has
one, coarse to fine, so a small face in a low-resolution frame is found again too; see ``detect.FaceSearch``):

- every ``redetect_every`` frames, whatever the fit: a new or larger face, slow drift;
- when the fit looks wrong: the landmarks jump (their centre moves by more than ``max_shift`` of
  their spread), grow or shrink by more than ``max_scale_change``, or change shape (their
  scale-free difference) by more than ``max_shape_change`` from one frame to the next; or the picture
  under them stops looking like the last frame's (normalised correlation of small grey patches
  below ``min_similarity``). A cut, a fast move or an occlusion does that; a face at video rates
  does not. The picture check is needed because the predictor always returns a face-shaped set of
  points, even on a wall or noise, and they can sit where the last face was. Measured on
  ``examples/driver.mp4`` with per-frame detection: shifts up to 0.19, scale changes up to 0.08,
  shape changes up to 0.14; tracked patches correlate at 0.64 and above (5th percentile 0.89). A cut
  to another face: shift 0.86, scale change 0.34; a photo of coffee or noise where the face was:
  correlation 0.26 and -0.02.

A backend without ``landmarks_in_box`` (face-alignment) is simply run on every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from talking_head.landmarks.detect import FaceDetection, LandmarkDetector
from talking_head.options import option


@runtime_checkable
class BoxLandmarker(Protocol):
    """A backend that can place the 68 points inside a given box without searching for the face."""

    def landmarks_in_box(self, image: np.ndarray, box: tuple[float, float, float, float],
                         score: float = 1.0) -> FaceDetection: ...


@dataclass(frozen=True)
class TrackConfig:
    enabled: bool = option(True, "follow the face from frame to frame with the 68-point predictor alone, running "
                           "the face detector only every redetect_every frames or when the fit looks wrong")
    redetect_every: int = option(10, "run the face detector at least every this many frames")
    max_shift: float = option(0.5, "detect again when the landmarks' centre moves more than this many of their "
                              "spreads (RMS distance from their centre) in one frame")
    max_scale_change: float = option(0.15, "detect again when the landmarks' spread changes by more than this "
                                     "fraction in one frame")
    max_shape_change: float = option(0.25, "detect again when the landmarks' shape, position and size factored out, "
                                     "changes by more than this (RMS, in spreads) in one frame")
    min_similarity: float = option(0.5, "detect again when the picture around the landmarks correlates less than this "
                                   "with the last frame's (grey patches, brightness and contrast factored out)")

    def __post_init__(self) -> None:
        if self.redetect_every < 1:
            raise ValueError(f"redetect_every must be at least 1, got {self.redetect_every}")
        if min(self.max_shift, self.max_scale_change, self.max_shape_change) <= 0:
            raise ValueError("max_shift, max_scale_change and max_shape_change must be positive")
        if not -1 <= self.min_similarity <= 1:
            raise ValueError(f"min_similarity is a correlation, in [-1, 1]; got {self.min_similarity}")


#: The side, in pixels, of the grey patches compared between frames: enough for a face's layout
#: (eyes, nose, mouth), too coarse for its expression to matter.
PATCH_SIZE = 24


def _centre_and_spread(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    centre = landmarks.mean(axis=0)
    return centre, float(np.sqrt(((landmarks - centre) ** 2).sum(axis=1).mean()))


def face_patch(frame: np.ndarray, landmarks: np.ndarray, side: float) -> np.ndarray | None:
    """The ``side``-pixel square around the landmarks' centre, grey, ``PATCH_SIZE`` a side, with zero mean and
    unit norm (so a dot product is the normalised correlation); None when it lies outside the frame."""
    cx, cy = landmarks.mean(axis=0)
    height, width = frame.shape[:2]
    x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    x1, y1 = min(width, int(cx + side / 2)), min(height, int(cy + side / 2))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    small = cv2.resize(np.ascontiguousarray(frame[y0:y1, x0:x1]), (PATCH_SIZE, PATCH_SIZE),
                       interpolation=cv2.INTER_AREA)
    grey = (cv2.cvtColor(small, cv2.COLOR_RGB2GRAY) if small.ndim == 3 else small).astype(np.float32)
    grey -= grey.mean()
    return grey / max(float(np.linalg.norm(grey)), 1e-6)


class FaceTracker:
    """The largest face's landmarks, frame after frame (call it in order; one tracker per stream).

    ``detections`` and ``tracked`` count the frames that ran the detector and those that ran the
    predictor alone.
    """

    def __init__(self, detector: LandmarkDetector, config: TrackConfig = TrackConfig()) -> None:
        self.detector, self.config = detector, config
        self._predictor = detector if config.enabled and isinstance(detector, BoxLandmarker) else None
        # A backend's search for video frames (cheaper than for a photo) where it has one.
        self._search = getattr(detector, "detect_frame", detector.detect)
        self.detections = self.tracked = 0
        self.reset()

    def reset(self) -> None:
        """Forget the face: the next frame is searched whole."""
        self._last: FaceDetection | None = None
        self._box_offset = np.zeros(2)  # the detector box's centre minus the landmarks' centre at detection
        self._box_side = 0.0
        self._since_detection = 0
        self._patch: np.ndarray | None = None  # the last face's picture (``face_patch``)

    def __call__(self, frame: np.ndarray) -> FaceDetection | None:
        """The face in ``frame`` (the next frame of the stream), or None when it holds none."""
        face = self._track(frame)
        if face is None:
            face = self._detect(frame)
            self._patch = face_patch(frame, face.landmarks, self._box_side) if face is not None else None
        self._last = face
        return face

    def _detect(self, frame: np.ndarray) -> FaceDetection | None:
        self.detections += 1
        faces = self._search(frame)
        if not faces:
            return None
        face = faces[0]
        x0, y0, x1, y1 = face.box
        self._box_offset = np.array([(x0 + x1) / 2, (y0 + y1) / 2]) - face.landmarks.mean(axis=0)
        self._box_side, self._since_detection = max(x1 - x0, y1 - y0), 0
        return face

    def _track(self, frame: np.ndarray) -> FaceDetection | None:
        """The predictor alone in the box moved with the last landmarks; None where a detection is due."""
        last = self._last
        if self._predictor is None or last is None or self._since_detection + 1 >= self.config.redetect_every:
            return None
        cx, cy = last.landmarks.mean(axis=0) + self._box_offset
        half = self._box_side / 2
        face = self._predictor.landmarks_in_box(frame, (cx - half, cy - half, cx + half, cy + half), last.score)
        if not self._plausible(last.landmarks, face.landmarks):
            return None
        patch = face_patch(frame, face.landmarks, self._box_side)
        if patch is None or self._patch is None or float((patch * self._patch).sum()) < self.config.min_similarity:
            return None
        self._patch = patch
        self._since_detection += 1
        self.tracked += 1
        return FaceDetection(face.box, face.landmarks, face.score, last.num_faces)

    def _plausible(self, before: np.ndarray, after: np.ndarray) -> bool:
        """Whether ``after`` can be the face of ``before`` one frame later (see the module's docstring)."""
        (c0, s0), (c1, s1) = _centre_and_spread(before), _centre_and_spread(after)
        if s0 <= 0 or s1 <= 0:
            return False
        shape_change = np.sqrt((((after - c1) / s1 - (before - c0) / s0) ** 2).sum(axis=1).mean())
        return (np.linalg.norm(c1 - c0) / s0 <= self.config.max_shift
                and abs(s1 / s0 - 1) <= self.config.max_scale_change
                and shape_change <= self.config.max_shape_change)
