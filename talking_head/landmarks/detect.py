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
    def width(self) -> float:
        """How many pixels across the face is: its landmarks' width, jaw end to jaw end."""
        return float(np.ptp(self.landmarks[:, 0]))

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
_CNN_LOCK = threading.Lock()

#: HOG's detection window: faces smaller than this (in the pixels scanned) are not found.
HOG_WINDOW = 80
#: The CNN detector's box, mapped onto the HOG box the 68-point predictor was trained on: (centre shift, side),
#: in CNN box sides. Measured on ``skimage.data.astronaut()``: CNN (168, 69, 263, 164), HOG (179, 83, 267, 171).
CNN_TO_HOG = (0.08, 0.11, 0.93)
#: A face whose box is smaller than this is landmarked on a crop upsampled to this size: the 68-point predictor
#: places points to the pixel, so a 30 px face gets coarse points at its own size.
LANDMARK_MIN_SIDE = 100
#: Each fine pass scans at this many times the last one's scale: HOG's own pyramid steps by 6/5 within a pass, but
#: a face between two passes' scales can score well on one and poorly on the other (a 30 px face: 0.42 at 3x,
#: 0.29 at 4x), so the passes are half an octave apart.
FINE_STEP = float(np.sqrt(2.0))


@dataclass(frozen=True)
class FaceSearch:
    """How hard ``DlibBackend`` looks for a face, coarse to fine, stopping at the first pass that finds one.

    1. HOG on a copy whose long side is ``max_detect_side``, then on that copy upsampled once (faces from about
       40 px of the copy up); with ``smaller_faces_too`` (photos) the upsampled pass runs even where the first
       found a face, and adds the faces it alone finds (a smaller face beside a larger one, for the face picker);
    2. HOG on the full-resolution image at finer and finer scales (``FINE_STEP`` apart), up to ``max_upscale``
       (faces down to ``HOG_WINDOW / max_upscale`` px), in tiles, skipping tiles without detail (a wall, the sky,
       a backdrop), until ``fine_megapixels`` of pixels have been scanned: a big busy photo is searched less
       finely than a small or plain one;
    3. dlib's CNN face detector on a copy of at most ``cnn_megapixels`` (0: never): it finds faces HOG misses
       (turned or tilted heads) but costs about 12 us a pixel here (2-core EPYC Zen 1: 1.0 s for 320 x 320)
       and needs faces of about 80 px in what it scans, so it is the last resort, for photos only.
    """

    max_detect_side: int = MAX_DETECT_SIDE
    max_upscale: float = 4.0
    fine_megapixels: float = 12.0
    cnn_megapixels: float = 0.07
    min_score: float = 0.3  # HOG: real faces score about 1-2.5; the astronaut's suit badge below 0.25
    fine_min_score: float = 0.3
    cnn_min_score: float = 0.5
    flat_std: float = 6.0  # a tile whose grey values vary less than this (std, 0-255) holds no face
    smaller_faces_too: bool = True  # the coarse upsampled pass after a face was found (about 0.1 s more)


#: Photos: worth a second or two to find the face. Video frames: the tracker detects often, so no CNN and a
#: smaller fine budget (a 176 x 144 frame is still scanned at 4x).
PHOTO_SEARCH = FaceSearch()
FRAME_SEARCH = FaceSearch(fine_megapixels=2.0, cnn_megapixels=0.0, smaller_faces_too=False)

Box = tuple[float, float, float, float]


@functools.cache
def _face_recognition_models_dir() -> Path:
    # Importing face_recognition_models needs pkg_resources, which current setuptools dropped, so the
    # package's folder is found without importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable("dlib backend needs the 'face-recognition-models' package: "
                                 "pip install face-recognition-models")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _model_path(name: str) -> str:
    path = _face_recognition_models_dir() / name
    if not path.is_file():
        raise BackendUnavailable(f"dlib backend: {path.name} is missing (reinstall face-recognition-models)")
    return str(path)


@functools.cache
def _dlib_models():
    """dlib's HOG face detector and 68-point predictor, loaded once per process (about 100 MB)."""
    try:
        import dlib
    except ImportError as error:
        raise BackendUnavailable(f"dlib backend needs dlib (pip install dlib-bin): {error}") from None
    predictor = dlib.shape_predictor(_model_path("shape_predictor_68_face_landmarks.dat"))
    return dlib, dlib.get_frontal_face_detector(), predictor


@functools.cache
def _dlib_cnn():
    """dlib's CNN (MMOD) face detector, loaded on first need only (dlib's own format, not a pickle)."""
    with _DLIB_LOCK:
        dlib = _dlib_models()[0]
        return dlib.cnn_face_detection_model_v1(_model_path("mmod_human_face_detector.dat"))


def _tiles(height: int, width: int, side: int, overlap: int) -> Iterator[tuple[int, int, int, int]]:
    """Overlapping ``side``-pixel tiles ``(x0, y0, x1, y1)`` covering the image (smaller at its far edges)."""
    step = max(1, side - overlap)
    for y0 in range(0, max(1, height - overlap), step):
        for x0 in range(0, max(1, width - overlap), step):
            yield x0, y0, min(width, x0 + side), min(height, y0 + side)


#: Two boxes overlapping more than this (intersection over union) are one face found twice.
OVERLAP = 0.3


def _suppress_overlaps(found: list[tuple[Box, float]], max_iou: float = OVERLAP) -> list[tuple[Box, float]]:
    """One box per face where overlapping tiles found it twice (the higher score kept)."""
    kept: list[tuple[Box, float]] = []
    for box, score in sorted(found, key=lambda item: -item[1]):
        if all(_iou(box, other) <= max_iou for other, _ in kept):
            kept.append((box, score))
    return kept


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _detail_mask(gray: np.ndarray, flat_std: float) -> np.ndarray:
    """Where ``gray`` varies (local standard deviation over 7 px at least ``flat_std``): a face has edges, a wall,
    the sky or a studio backdrop does not."""
    values = gray.astype(np.float32)
    mean = cv2.blur(values, (7, 7))
    variance = cv2.blur(values * values, (7, 7)) - mean * mean
    return variance >= flat_std ** 2


def _trimmed(tile: tuple[int, int, int, int], detail: np.ndarray, base: float, margin: int
             ) -> tuple[int, int, int, int] | None:
    """``tile`` (full-resolution pixels) cut down to its detailed part plus ``margin``; None if it has none.
    ``detail`` is the mask of the coarse copy, ``base`` times the full resolution."""
    x0, y0, x1, y1 = tile
    patch = detail[int(y0 * base):max(int(np.ceil(y1 * base)), int(y0 * base) + 1),
                   int(x0 * base):max(int(np.ceil(x1 * base)), int(x0 * base) + 1)]
    rows, columns = np.nonzero(patch.any(axis=1))[0], np.nonzero(patch.any(axis=0))[0]
    if not len(rows):
        return None
    top, left = int(y0 * base), int(x0 * base)
    return (max(x0, int((left + columns[0]) / base) - margin), max(y0, int((top + rows[0]) / base) - margin),
            min(x1, int(np.ceil((left + columns[-1] + 1) / base)) + margin),
            min(y1, int(np.ceil((top + rows[-1] + 1) / base)) + margin))


class DlibBackend:
    """dlib's HOG frontal-face detector + 68-point shape predictor; offline, CPU-only, fast; searched coarse to
    fine (``FaceSearch``), with dlib's CNN detector as the last resort for photos."""

    name = "dlib"

    def __init__(self, search: FaceSearch = PHOTO_SEARCH, frame_search: FaceSearch = FRAME_SEARCH) -> None:
        self.search, self.frame_search = search, frame_search
        with _DLIB_LOCK:  # one load even if several request threads arrive at once
            self._dlib, self._detector, self._predictor = _dlib_models()
        # dlib documents its object detector as unsafe for concurrent calls (internal scratch
        # buffers); the shape predictor is safe to share.
        self._detector_lock = threading.Lock()

    def _hog(self, gray: np.ndarray, scale: float, min_score: float, offset: tuple[int, int] = (0, 0)
             ) -> list[tuple[Box, float]]:
        """HOG on ``gray`` resized by ``scale``; boxes in ``gray``'s pixels plus ``offset``."""
        if scale != 1.0:
            size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        with self._detector_lock:
            rects, scores, _ = self._detector.run(gray, 0, min_score)
        ox, oy = offset
        return [((r.left() / scale + ox, r.top() / scale + oy, (r.right() + 1) / scale + ox,
                  (r.bottom() + 1) / scale + oy), float(score)) for r, score in zip(rects, scores)]

    def _boxes(self, image: np.ndarray, search: FaceSearch) -> list[tuple[Box, float]]:
        """Face boxes in ``image``'s pixels, from the first pass of ``search`` that finds any."""
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        base = min(1.0, search.max_detect_side / max(gray.shape))  # the coarse copy's scale
        small = self._resized(gray, base)
        found: list[tuple[Box, float]] = []
        for upsample in (1.0, 2.0):
            if found and not search.smaller_faces_too:
                break
            found += [(box, score) for box, score in self._hog(small, upsample, search.min_score)
                      if all(_iou(box, other) <= OVERLAP for other, _ in found)]  # a face found again: its first box
        if found:
            return [(tuple(v / base for v in box), score) for box, score in found]
        found = self._fine(gray, small, base, search)
        return found or self._cnn(image, search)

    @staticmethod
    def _resized(gray: np.ndarray, scale: float) -> np.ndarray:
        if scale == 1.0:
            return gray
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)

    def _fine(self, gray: np.ndarray, small: np.ndarray, base: float, search: FaceSearch) -> list[tuple[Box, float]]:
        """Finer and finer scales (each ``FINE_STEP`` times the last) of the full-resolution image, in tiles
        trimmed to their detailed part, until one finds a face, ``max_upscale`` is reached or the budget is spent."""
        budget, scale = search.fine_megapixels * 1e6, 2.0 * base
        detail = _detail_mask(small, search.flat_std)
        while scale < search.max_upscale:
            scale = min(scale * FINE_STEP, search.max_upscale)
            # A tile holds the largest face this scale looks for (two windows) with room: its overlap.
            overlap = int(np.ceil(2.5 * HOG_WINDOW / scale))
            tiles = [t for tile in _tiles(*gray.shape, 4 * overlap, overlap)
                     if (t := _trimmed(tile, detail, base, overlap)) is not None]
            cost = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in tiles) * scale ** 2
            if cost > budget:
                log.info("face search: %.1f Mpx of detail at %.2fx is over the budget; stopped", cost / 1e6, scale)
                return []
            budget -= cost
            found = [hit for x0, y0, x1, y1 in tiles
                     for hit in self._hog(gray[y0:y1, x0:x1], scale, search.fine_min_score, (x0, y0))]
            if found:
                return _suppress_overlaps(found)
        return []

    def _cnn(self, image: np.ndarray, search: FaceSearch) -> list[tuple[Box, float]]:
        """dlib's CNN detector on a copy of at most ``cnn_megapixels``; its boxes mapped to HOG's."""
        if search.cnn_megapixels <= 0:
            return []
        scale = min(1.0, float(np.sqrt(search.cnn_megapixels * 1e6 / (image.shape[0] * image.shape[1]))))
        copy = image if scale == 1.0 else cv2.resize(
            image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
            interpolation=cv2.INTER_AREA)
        if min(copy.shape[:2]) < HOG_WINDOW:  # no face it can find fits (and dlib's network fails on a few pixels)
            return []
        with _CNN_LOCK:  # one network per process; dlib's networks are not safe for concurrent calls
            hits = _dlib_cnn()(copy, 0)
        dx, dy, grow = CNN_TO_HOG
        found = []
        for hit in hits:
            if hit.confidence < search.cnn_min_score:
                continue
            r = hit.rect
            side = (r.right() + 1 - r.left()) / scale
            cx = (r.left() + r.right() + 1) / 2 / scale + dx * side
            cy = (r.top() + r.bottom() + 1) / 2 / scale + dy * side
            half = grow * side / 2
            found.append(((cx - half, cy - half, cx + half, cy + half), float(hit.confidence)))
        return found

    def landmarks_in_box(self, image: np.ndarray, box: Box, score: float = 1.0) -> FaceDetection:
        """The 68 points of the face in ``box`` (a dlib detector box), without running the detector:
        the fast path for tracking a face through video frames. A small box is landmarked on an upsampled
        crop (``LANDMARK_MIN_SIDE``)."""
        image = to_rgb_uint8(image)
        side = max(box[2] - box[0], box[3] - box[1])
        if side >= LANDMARK_MIN_SIDE or side <= 0:
            x0, y0, x1, y1 = (round(v) for v in box)
            shape = self._predictor(image, self._dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
            return FaceDetection(tuple(float(v) for v in box), points, score)
        zoom = LANDMARK_MIN_SIDE / side
        # The crop: the box with half its side around it (the predictor looks a little outside its box).
        cx0, cy0 = max(0, int(box[0] - side / 2)), max(0, int(box[1] - side / 2))
        cx1 = min(image.shape[1], int(np.ceil(box[2] + side / 2)))
        cy1 = min(image.shape[0], int(np.ceil(box[3] + side / 2)))
        crop = cv2.resize(image[cy0:cy1, cx0:cx1], (round((cx1 - cx0) * zoom), round((cy1 - cy0) * zoom)),
                          interpolation=cv2.INTER_CUBIC)
        bx0, by0, bx1, by1 = (round((v - o) * zoom) for v, o in zip(box, (cx0, cy0, cx0, cy0)))
        shape = self._predictor(crop, self._dlib.rectangle(bx0, by0, bx1 - 1, by1 - 1))
        # Pixel centres: crop pixel i covers original (i + 0.5) / zoom - 0.5 past the crop's corner.
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        points = (points + 0.5) / zoom - 0.5 + np.array([cx0, cy0], dtype=np.float32)
        return FaceDetection(tuple(float(v) for v in box), points.astype(np.float32), score)

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Every face of a photo, largest first (``search``: coarse to fine, the CNN last)."""
        return self._detect(image, self.search)

    def detect_frame(self, image: np.ndarray) -> list[FaceDetection]:
        """Every face of a video frame, largest first (``frame_search``: cheaper, no CNN)."""
        return self._detect(image, self.frame_search)

    def _detect(self, image: np.ndarray, search: FaceSearch) -> list[FaceDetection]:
        image = to_rgb_uint8(image)
        return _largest_first([self.landmarks_in_box(image, box, score) for box, score in self._boxes(image, search)])


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


def detect_face(image: np.ndarray, detector: LandmarkDetector | None = None, face: int = 1) -> FaceDetection:
    """Face number ``face`` of a photo by size (1: the largest); ``NoFaceError`` if there is none, an
    ``InputError`` if there are fewer than ``face``, a warning if there are several."""
    faces = (detector or get_detector()).detect(to_rgb_uint8(image))
    if not faces:
        raise NoFaceError("No face was found in this image. Please use a photo where one face is clearly "
                          "visible, looking roughly towards the camera, and not too small.")
    if not 1 <= face <= len(faces):
        found = f"{len(faces)} face" + ("s" if len(faces) > 1 else "")
        raise InputError(f"{found} found, so there is no face {face} (faces are numbered by size, 1 = the largest)")
    if len(faces) > 1:
        log.warning("found %d faces; using face %d by size", len(faces), face)
    return faces[face - 1]


def detect_video(frames: Iterable[np.ndarray], detector: LandmarkDetector | None = None
                 ) -> Iterator[np.ndarray | None]:
    """Landmarks (68, 2) of the largest face in each frame, or None where a frame has no face.

    A generator, so a long video is never held in memory: pass frames as they are decoded.
    """
    detector = detector or get_detector()
    search = getattr(detector, "detect_frame", detector.detect)  # a backend's search for video frames
    for frame in frames:
        faces = search(frame)
        yield faces[0].landmarks if faces else None
