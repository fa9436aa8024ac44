"""A clip of yourself as K shots: the frames a shot bank needs, chosen from a few seconds of video.

The paper's K shots are frames of a video of the person; a visitor rarely has 8 photos but can record
5 seconds. Which frames to take matters more than how many: the bank serves each driven frame from the
shots nearest it in head pose and mouth shape (``shot_bank``), so the shots should *cover* the poses and
mouth states of the clip, each sharp, none a near-copy of another.

How (:func:`choose_shots`):

- The clip is decoded once as a stream, under a driver's limits (frame rate, length) and downscaled by
  ffmpeg to ``decode_side``; the face is followed by :class:`~talking_head.landmarks.track.FaceTracker`.
- Every frame with a face gets a **descriptor** (head turn and nod proxies, mouth opening and width,
  each in units of a change worth a shot: :func:`describe`) and a **sharpness**: the variance of the
  Laplacian of the face box, resized to a fixed side so that near and far faces compare.
- Only a bounded set of candidate frames is kept (``candidates``): a frame enters when it is not blurred
  (sharper than ``blur_fraction`` of the median so far); when the set is full, of the two closest
  candidates the less sharp one goes, so the set keeps covering the clip while its memory is flat in
  the clip's length. The widest mouth opening and the largest head turn so far are never evicted.
- Then **farthest-point selection**: the widest mouth opening and the largest head turn first, then
  again and again the candidate farthest from every shot taken, until K, or until the farthest is a
  near-duplicate (closer than ``duplicate_distance``): fewer, distinct shots are better than copies.

Refused with an :class:`InputError`: a clip where the face is found in under ``min_face_share`` of the
frames, or where two or more faces show in over ``max_crowded_share`` of them. A clip with one frame,
or one that does not move (a still image as video), gives its one usable frame and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from talking_head.errors import InputError
from talking_head.landmarks.detect import FaceDetection, LandmarkDetector
from talking_head.landmarks.mouth import eye_distance, mouth_opening, mouth_width
from talking_head.landmarks.track import FaceTracker
from talking_head.limits import Limits
from talking_head.media import iter_video_frames, probe_driver
from talking_head.options import option

#: File name endings taken as clips where photos are expected (anything else is opened as a photo).
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi")
#: The face box is resized to this side before its sharpness is measured: near and far faces compare.
SHARPNESS_SIDE = 128
#: Units of the descriptor: a change of this much in each is "worth another shot" (distance 1). Turn and
#: nod are the nose's offset from the face's middle in eye distances; opening and width as ``landmarks.mouth``.
DESCRIPTOR_UNITS = {"turn": 0.15, "nod": 0.1, "opening": 0.1, "width": 0.08}
#: A head turned less than this (in the descriptor's turn units) from its usual place has not turned: the
#: largest "turn" of a clip that only nods or talks is not taken for its own sake.
MIN_TURN = 0.5
#: Thumbnails compared to tell a still image from a clip (grey, this side).
THUMB_SIDE = 32
#: A clip whose landmarks never move further than this (RMS, eye distances) from the first face's, and whose
#: thumbnails never change by ``still_motion``, is a still image: a real head held still moves more.
STILL_LANDMARKS = 0.02


def is_video(source: object) -> bool:
    """Whether a photos entry is a clip: a path whose name ends like a video file."""
    return isinstance(source, (str, Path)) and str(source).lower().endswith(VIDEO_SUFFIXES)


@dataclass(frozen=True)
class ClipShotsConfig:
    shots: int = option(8, "frames a clip among --photos contributes as shots (at most the shot limit)")
    candidates: int = option(40, "with a clip: frames kept as candidates while it is decoded (memory: this many "
                             "downscaled frames, whatever the clip's length)")
    decode_side: int = option(640, "with a clip: its frames are decoded with their long side at most this")
    blur_fraction: float = option(0.5, "with a clip: a frame sharper than this fraction of the clip's median face "
                                  "sharpness is usable, a blurrier one is skipped")
    duplicate_distance: float = option(0.35, "with a clip: shots closer than this in pose and mouth (in units of "
                                       "DESCRIPTOR_UNITS) are near-duplicates; fewer shots are taken instead")
    min_face_share: float = option(0.5, "with a clip: refused when the face is found in fewer of its frames")
    max_crowded_share: float = option(0.5, "with a clip: refused when more of its frames show two faces or more")
    still_motion: float = option(1.0, "with a clip: when its frames never differ from the first by this much (mean "
                                 "grey levels of thumbnails) nor its face by STILL_LANDMARKS, it is a still image: "
                                 "one shot is taken")

    def __post_init__(self) -> None:
        if self.shots < 1:
            raise InputError(f"--shots must be 1 or more, got {self.shots}")
        if self.candidates < 2 or self.decode_side < 64:
            raise ValueError("candidates must be at least 2 and decode_side at least 64")


@dataclass(frozen=True)
class ClipShot:
    """One frame taken: its picture (RGB, decoded size), its face, when it was and why it was taken."""

    frame: np.ndarray
    face: FaceDetection
    index: int
    time: float
    sharpness: float
    reason: str


@dataclass
class ClipShots:
    """The shots of one clip, in the order taken (the most telling first: a prefix is a good smaller K)."""

    name: str
    shots: list[ClipShot]
    frames: int  # decoded
    with_face: int
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line for a person: which times were taken and why."""
        taken = ", ".join(f"{s.time:.2f} s ({s.reason})" for s in self.shots)
        return f"{self.name}: {len(self.shots)} shot{'s' * (len(self.shots) != 1)} from {self.frames} frames: {taken}"


def describe(landmarks: np.ndarray) -> np.ndarray:
    """(68, 2) -> [turn, nod, opening, width], each in ``DESCRIPTOR_UNITS``.

    Turn and nod: the nose tip's offset from the middle of the outer eye corners and the mouth corners, in
    eye distances, after the eye line is levelled (roll does not change what a shot shows of the head)."""
    points = np.asarray(landmarks, np.float64)
    left, right = points[36:42].mean(0), points[42:48].mean(0)
    angle = math.atan2(right[1] - left[1], right[0] - left[0])
    rotation = np.array([[math.cos(-angle), -math.sin(-angle)], [math.sin(-angle), math.cos(-angle)]])
    level = (points - points.mean(0)) @ rotation.T / max(float(eye_distance(points)), 1e-6)
    middle = (level[36] + level[45] + level[48] + level[54]) / 4
    turn, nod = level[30] - middle
    values = {"turn": turn, "nod": nod, "opening": mouth_opening(points), "width": mouth_width(points)}
    return np.array([float(values[k]) / unit for k, unit in DESCRIPTOR_UNITS.items()])


def face_sharpness(frame: np.ndarray, landmarks: np.ndarray) -> float:
    """Variance of the Laplacian of the face's box (grey, resized to ``SHARPNESS_SIDE``): motion blur lowers it."""
    low, high = np.floor(landmarks.min(0)).astype(int), np.ceil(landmarks.max(0)).astype(int)
    x0, y0 = np.maximum(low, 0)
    x1, y1 = np.minimum(high, (frame.shape[1], frame.shape[0]))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


@dataclass
class _Candidate:
    index: int
    frame: np.ndarray
    face: FaceDetection
    descriptor: np.ndarray
    sharpness: float


class _Reservoir:
    """At most ``size`` candidates that keep covering the descriptors seen: when full, of the closest two the
    less sharp goes; the widest opening and the largest turn (the protected extremes) never go."""

    def __init__(self, size: int) -> None:
        self.size, self.items = size, []

    def extremes(self, straight: float) -> set[int]:
        """Positions of the widest mouth opening and the largest head turn (away from ``straight``)."""
        return {max(range(len(self.items)), key=lambda i: self.items[i].descriptor[2]),
                max(range(len(self.items)), key=lambda i: abs(self.items[i].descriptor[0] - straight))}

    def add(self, candidate: _Candidate, straight: float) -> None:
        """Keep ``candidate`` unless it or another is the most redundant; ``straight``: the clip's usual turn."""
        self.items.append(candidate)
        if len(self.items) <= self.size:
            return
        descriptors = np.stack([c.descriptor for c in self.items])
        distances = np.linalg.norm(descriptors[:, None] - descriptors[None], axis=-1)
        distances[np.diag_indices(len(self.items))] = np.inf
        protected = self.extremes(straight)
        for flat in np.argsort(distances, axis=None):
            pair = np.unravel_index(flat, distances.shape)
            out = [i for i in sorted(pair, key=lambda i: self.items[i].sharpness) if i not in protected]
            if out:
                del self.items[out[0]]
                return


def choose_shots(path: str | Path, detector: LandmarkDetector, config: ClipShotsConfig = ClipShotsConfig(),
                 limits: Limits | None = None, max_frames: int | None = None) -> ClipShots:
    """The shots of the clip ``path`` (see the module's docstring), or an :class:`InputError` saying why none;
    ``max_frames``: from its first this-many frames only (``evaluate --clip`` keeps the rest as targets)."""
    limits = limits or Limits.from_env()
    path = Path(path)
    if config.shots > limits.max_shots:
        raise InputError(f"--shots is {config.shots}; at most {limits.max_shots} shots can be used")
    info = probe_driver(path, limits)
    decoded = info.capped(info.fps, min(config.decode_side, limits.max_driver_side))
    longest = max(1, int(limits.max_video_seconds * decoded.fps + 1e-6))
    longest = longest if max_frames is None else min(longest, max_frames)
    too_long = info.duration > limits.max_video_seconds + 1e-6
    notes = [(f"{path.name}: only its first {limits.max_video_seconds:g} s were read (it is "
              f"{info.duration:.0f} s long)")] if too_long else []
    tracker, reservoir = FaceTracker(detector), _Reservoir(config.candidates)
    sharpness: list[float] = []  # and turns: a number per frame with a face, a few kB for a minute's clip
    turns: list[float] = []
    frames = crowded = 0
    first_thumb, first_points, moved = None, None, False
    for index, frame in enumerate(iter_video_frames(path, longest, decoded)):
        frames += 1
        thumb = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (THUMB_SIDE, THUMB_SIDE),
                           interpolation=cv2.INTER_AREA).astype(np.float32)
        first_thumb = thumb if first_thumb is None else first_thumb
        moved = moved or float(np.abs(thumb - first_thumb).mean()) >= config.still_motion
        face = tracker(frame)
        if face is None:
            continue
        crowded += face.num_faces > 1
        points = face.landmarks.astype(np.float64)
        first_points = points if first_points is None else first_points
        shift = float(np.sqrt(((points - first_points) ** 2).sum(1).mean()) / eye_distance(points))
        moved = moved or shift >= STILL_LANDMARKS
        sharp, descriptor = face_sharpness(frame, points), describe(points)
        sharpness.append(sharp)
        turns.append(float(descriptor[0]))
        if sharp >= config.blur_fraction * float(np.median(sharpness)):
            reservoir.add(_Candidate(index, frame.copy(), face, descriptor, sharp), float(np.median(turns)))
    with_face = len(sharpness)
    if with_face < config.min_face_share * frames or not with_face:
        raise InputError(f"{path.name}: a face was found in {with_face} of its {frames} frames; a clip for shots "
                         f"needs one face in most of them (face the camera, in good light)")
    if crowded > config.max_crowded_share * with_face:
        raise InputError(f"{path.name}: two or more faces show in {crowded} of its {with_face} frames with a face; "
                         f"record a clip of one person alone")
    median = float(np.median(sharpness))
    usable = [c for c in reservoir.items if c.sharpness >= config.blur_fraction * median]
    usable = usable or [max(reservoir.items, key=lambda c: c.sharpness)]
    chosen = _chosen(usable, config, frames, moved, float(np.median(turns)), notes, path.name)
    shots = [ClipShot(c.frame, c.face, c.index, c.index / decoded.fps, c.sharpness, why) for c, why in chosen]
    return ClipShots(path.name, shots, frames, with_face, notes)


def _chosen(usable: list[_Candidate], config: ClipShotsConfig, frames: int, moved: bool, straight: float,
            notes: list[str], name: str) -> list[tuple[_Candidate, str]]:
    """The shots among the ``usable`` candidates with why each, and a note (added to ``notes``) where fewer than
    asked are taken: a clip of one frame, or one that does not move, gives one shot (copies would add nothing)."""
    if frames == 1 or not moved:
        best = max(usable, key=lambda c: c.sharpness)
        why = "its only frame" if frames == 1 else "the clip does not move: one shot, copies would add nothing"
        notes.append(f"{name}: {why}")
        return [(best, "the sharpest frame" if frames > 1 else "the only frame")]
    chosen = farthest_points(usable, config.shots, config.duplicate_distance, straight)
    if len(chosen) < config.shots:
        notes.append(f"{name}: {len(chosen)} distinct shots (of {config.shots} asked): the other frames "
                     f"are near-duplicates of these in head pose and mouth")
    return chosen


def farthest_points(candidates: list[_Candidate], k: int, duplicate: float, straight: float = 0.0
                    ) -> list[tuple[_Candidate, str]]:
    """Up to ``k`` candidates with why each: the widest mouth opening, the largest head turn (away from
    ``straight``, the clip's median turn: a face's own asymmetry and the camera's angle are not a turn; at least
    ``MIN_TURN``), then
    each time the one farthest from all taken (ties: the sharper), stopping before a near-duplicate (closer
    than ``duplicate``)."""
    opening = max(candidates, key=lambda c: (c.descriptor[2], c.sharpness))
    turn = max(candidates, key=lambda c: (abs(c.descriptor[0] - straight), c.sharpness))
    units = DESCRIPTOR_UNITS
    chosen = [(opening, f"widest mouth opening, {opening.descriptor[2] * units['opening']:.2f} eye distances")]
    if turn is not opening and k > 1 and abs(turn.descriptor[0] - straight) >= MIN_TURN:
        away = (turn.descriptor[0] - straight) * units["turn"]
        chosen.append((turn, f"largest head turn, nose {away:+.2f} eye distances off its usual place"))
    chosen = chosen[:k]
    while len(chosen) < k:
        taken = np.stack([c.descriptor for c, _ in chosen])
        rest = [c for c in candidates if all(c is not t for t, _ in chosen)]
        if not rest:
            break
        gaps = [float(np.linalg.norm(taken - c.descriptor, axis=1).min()) for c in rest]
        best = max(range(len(rest)), key=lambda i: (gaps[i], rest[i].sharpness))
        if gaps[best] < duplicate:
            break
        chosen.append((rest[best], f"farthest from the shots before it in pose and mouth ({gaps[best]:.1f})"))
    return chosen
