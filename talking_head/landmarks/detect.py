"""Face detection and 68-point landmarks (iBUG order) behind one small interface.

Two backends:

- ``FaceAlignmentBackend``: the paper's landmark network (Bulat & Tzimiropoulos' FAN, via the
  ``face-alignment`` package). Best quality, but it downloads its weights at first use, so it fails
  on a machine with no network; it then raises ``BackendUnavailable`` with one clear line.
- ``DlibBackend``: dlib's HOG face detector and 68-point shape predictor, whose weights ship inside
  the ``face-recognition-models`` registry package, so it works offline (about 1 ms a face for the
  landmarks, 5-25 ms for the detector on CPU).

``get_detector("auto")`` picks the first that loads and says which; ``detect_face`` returns the
largest face of a photo; ``detect_video`` streams over frames.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from talking_head.errors import InputError

log = logging.getLogger(__name__)

#: Faces are searched on a copy whose long side is at most this many pixels: the detectors' cost grows
#: with the pixel count, while a face must be tiny in a photo of this size to be missed. The
#: 68 points are then located on the full-resolution image.
MAX_DETECT_SIDE = 640


class NoFaceError(InputError):
    """No face was found in an image (a message meant for the person who supplied the image)."""

    @classmethod
    def in_photo(cls, name: str) -> NoFaceError:
        """The error for the photo ``name``, saying what kind of photo works instead."""
        return cls(f"{name}: no face found. Use a photo where one face is clearly visible, frontal and well lit.")


class BackendUnavailable(RuntimeError):
    """A landmark backend cannot be used here (missing package or weights that cannot be fetched)."""


@dataclass(frozen=True)
class FaceDetection:
    """One face: its detector box ``(x0, y0, x1, y1)`` and 68 landmarks ``(x, y)``, both in pixels of
    the image given to the detector; ``num_faces`` is how many faces that image held."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray  # (68, 2) float32
    score: float
    num_faces: int = 1

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


class LandmarkDetector(Protocol):
    """What every backend offers: a ``name`` and ``detect`` returning all faces, largest first."""

    name: str

    def detect(self, image: np.ndarray) -> list[FaceDetection]: ...


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Any photo array (grayscale, RGBA, uint16, float in [0, 1]) as ``H x W x 3`` uint8 RGB."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
        raise ValueError(f"expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.dtype == np.uint16:
        image = np.round(image / 257.0).astype(np.uint8)
    elif np.issubdtype(image.dtype, np.floating):
        if image.size and (np.nanmin(image) < 0.0 or np.nanmax(image) > 1.0):
            raise ValueError("float images must hold values in [0, 1]; convert 0-255 images to uint8 first")
        image = np.round(np.nan_to_num(image) * 255.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"unsupported image dtype {image.dtype}: use uint8, uint16 or float in [0, 1]")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def _detection_copy(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The image shrunk so its long side is at most ``max_side``, and the factor (copy / original)."""
    factor = min(1.0, max_side / max(image.shape[:2]))
    if factor == 1.0:
        return image, 1.0
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), factor


def _largest_first(faces: list[FaceDetection]) -> list[FaceDetection]:
    faces = sorted(faces, key=lambda face: face.area, reverse=True)
    return [FaceDetection(f.box, f.landmarks, f.score, len(faces)) for f in faces]


# ------------------------------------------------------------------------------------------- dlib
_DLIB_LOCK = threading.Lock()


@functools.cache
def _face_recognition_models_dir() -> Path:
    # Importing face_recognition_models needs pkg_resources, which current setuptools dropped, so the
    # package's folder is found without importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable("dlib backend needs the 'face-recognition-models' package: "
                                 "pip install face-recognition-models")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@functools.cache
def _dlib_models():
    """dlib's HOG face detector and 68-point predictor, loaded once per process (about 100 MB)."""
    try:
        import dlib
    except ImportError as error:
        raise BackendUnavailable(f"dlib backend needs dlib (pip install dlib-bin): {error}") from None
    path = _face_recognition_models_dir() / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise BackendUnavailable(f"dlib backend: {path} is missing (reinstall face-recognition-models)")
    return dlib, dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path))


class DlibBackend:
    """dlib's HOG frontal-face detector + 68-point shape predictor; offline, CPU-only, fast.

    ``min_score`` drops weak HOG responses: real faces score about 1-2.5, while textures that look a
    little like a face (the badge on ``skimage.data.astronaut()``'s suit) score below 0.25.
    """

    name = "dlib"

    def __init__(self, max_detect_side: int = MAX_DETECT_SIDE, min_score: float = 0.3) -> None:
        self.max_detect_side = max_detect_side
        self.min_score = min_score
        with _DLIB_LOCK:  # one load even if several request threads arrive at once
            self._dlib, self._detector, self._predictor = _dlib_models()
        # dlib documents its object detector as unsafe for concurrent calls (internal scratch
        # buffers); the shape predictor is safe to share.
        self._detector_lock = threading.Lock()

    def _boxes(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        small, factor = _detection_copy(image, self.max_detect_side)
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        with self._detector_lock:
            # HOG finds faces of about 80 pixels and up; upsample once before giving up on small ones.
            for upsample in (0, 1):
                rects, scores, _ = self._detector.run(gray, upsample, self.min_score)
                if rects:
                    break
        return [((r.left() / factor, r.top() / factor, (r.right() + 1) / factor, (r.bottom() + 1) / factor),
                 float(score)) for r, score in zip(rects, scores)]

    def landmarks_in_box(self, image: np.ndarray, box: tuple[float, float, float, float],
                         score: float = 1.0) -> FaceDetection:
        """The 68 points of the face in ``box`` (a dlib detector box), without running the detector:
        the fast path for tracking a face through video frames."""
        image = to_rgb_uint8(image)
        x0, y0, x1, y1 = (round(v) for v in box)
        shape = self._predictor(image, self._dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        return FaceDetection(tuple(float(v) for v in box), points, score)

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        image = to_rgb_uint8(image)
        return _largest_first([self.landmarks_in_box(image, box, score) for box, score in self._boxes(image)])


# --------------------------------------------------------------------------------- face-alignment
class FaceAlignmentBackend:
    """The paper's landmark network (FAN) with its S3FD face detector, from ``face-alignment``.

    Constructing it loads (and on first use downloads) the weights; any failure to do so becomes one
    ``BackendUnavailable`` line rather than a urllib traceback.
    """

    name = "face_alignment"

    def __init__(self, device: str | None = None, max_detect_side: int = MAX_DETECT_SIDE) -> None:
        try:
            import face_alignment
            import torch
        except ImportError as error:
            raise BackendUnavailable(f"face_alignment backend needs the 'face-alignment' package: {error}") from None
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.max_detect_side = max_detect_side
        try:
            # compile=False: torch.compile costs a minute at start-up on CPU for little gain here.
            self._fa = face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, device=self.device,
                                                    flip_input=False, compile=False)
        except Exception as error:  # URLError offline, HTTP errors, corrupt downloads, CUDA errors
            reason = str(getattr(error, "reason", error)) or type(error).__name__
            raise BackendUnavailable(f"face_alignment backend could not load its weights "
                                     f"(they are downloaded on first use): {reason}") from None
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        image = to_rgb_uint8(image)
        small, factor = _detection_copy(image, self.max_detect_side)
        with self._lock:
            boxes = [np.asarray(b, dtype=np.float64) for b in self._fa.face_detector.detect_from_image(small.copy())]
            if not boxes:
                return []
            for box in boxes:
                box[:4] /= factor
            landmarks = self._fa.get_landmarks_from_image(image, detected_faces=boxes)
        return _largest_first([FaceDetection(tuple(float(v) for v in box[:4]), np.asarray(points[:, :2], np.float32),
                                             float(box[4])) for box, points in zip(boxes, landmarks)])


# ------------------------------------------------------------------------------------- public API
_BACKENDS = {"face_alignment": FaceAlignmentBackend, "dlib": DlibBackend}


@functools.lru_cache(maxsize=None)
def get_detector(backend: str = "auto") -> LandmarkDetector:
    """A landmark detector, built once per process and backend (the app calls this per request).

    ``"auto"`` is dlib: its models ship in a pip package (``face-recognition-models``) and load without
    unpickling anything. The paper's face-alignment network is used only when asked for by name
    (``"face_alignment"``): it downloads its weights from its author's server on first use and loads
    them with ``torch.load`` (pickles), which this project does with nothing from outside unless asked
    (on a Space with internet, ``"auto"`` once chose it and would have done so for every visitor).
    """
    backend = "dlib" if backend == "auto" else backend
    if backend not in _BACKENDS:
        raise ValueError(f"unknown landmark backend {backend!r}: choose 'auto', 'face_alignment' or 'dlib'")
    return _BACKENDS[backend]()


def detect_face(image: np.ndarray, detector: LandmarkDetector | None = None) -> FaceDetection:
    """The largest face of a photo; ``NoFaceError`` if there is none, a warning if there are several."""
    faces = (detector or get_detector()).detect(to_rgb_uint8(image))
    if not faces:
        raise NoFaceError("No face was found in this image. Please use a photo where one face is clearly "
                          "visible, looking roughly towards the camera, and not too small.")
    if faces[0].num_faces > 1:
        log.warning("found %d faces; using the largest", faces[0].num_faces)
    return faces[0]


def detect_video(frames: Iterable[np.ndarray], detector: LandmarkDetector | None = None
                 ) -> Iterator[np.ndarray | None]:
    """Landmarks (68, 2) of the largest face in each frame, or None where a frame has no face.

    A generator, so a long video is never held in memory: pass frames as they are decoded.
    """
    detector = detector or get_detector()
    for frame in frames:
        faces = detector.detect(frame)
        yield faces[0].landmarks if faces else None
