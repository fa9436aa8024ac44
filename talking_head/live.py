"""Live mode: camera frames in, the avatar's face out, one frame at a time.

One loop, two front ends (``python -m talking_head live`` and the app's *Live* tab)::

    session = LiveSession(avatar)                 # per visitor: never shared
    for frame in camera:
        shown = session.step(frame)               # LiveFrame: image (marked), hint, timings
    session.recentre()                            # the next frames with a face are the neutral pose again

or as a generator, ``for shown in run_live(frames, avatar): ...``. Each step is render.py's chain for a
single frame, in two halves: :meth:`LiveSession.prepare` (landmarks, followed between detections by
``FaceTracker`` -> One-Euro smoothing (``LandmarkSmoother``) -> relative retargeting (``Retargeter``, its
reference the mean of the first frames with a face) -> the warp, ``texture_for``) and
:meth:`LiveSession.finish` (``finish_faces``: the warp, or the generator over it -> ``stamp_synthetic``).
``run_live`` runs the two halves on two threads, the next frame prepared while this one is generated; ``step``
runs them one after the other (the app's tab, which gets one frame per call). A frame without a face shows the last good
frame with a hint; a step never raises for what a camera sends.

``CameraFeed`` turns any frame source into what a camera is: frames arrive on their own clock and the
loop always takes the newest one (older ones are dropped, so latency does not pile up when rendering
is slower than the camera).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from talking_head.avatar import Avatar
from talking_head.device import autocast
from talking_head.face_render import GENERATOR_BY_DEFAULT, MOUTH_BY_DEFAULT, BatchGenerator, finish_faces, texture_for
from talking_head.landmarks.align import RETARGET_MODES, Retargeter
from talking_head.landmarks.smooth import LandmarkSmoother
from talking_head.landmarks.detect import LandmarkDetector, get_detector, to_rgb_uint8
from talking_head.landmarks.track import FaceTracker, TrackConfig
from talking_head.limits import Limits
from talking_head.options import option
from talking_head.render import DEFAULT_OUTPUT_SIZE, RenderConfig, fit_height
from talking_head.stages import ThreadedStage
from talking_head.watermark import POSITIONS, stamp_synthetic

if TYPE_CHECKING:
    from typing import Self  # Python 3.11; the project supports 3.10

logger = logging.getLogger(__name__)

#: Shown while no face has been seen yet, and when the face is lost.
HINT_NO_FACE_YET = "No face in view yet: look into the camera."
HINT_FACE_LOST = "Face lost: showing the last good frame. Look into the camera."
#: Timing stages, in the order a step runs them.
STAGES = ("landmarks", "retarget", "warp", "generate", "mark")
#: Frames smaller than this a side hold no face worth searching (an empty frame as a stream starts).
MIN_FRAME_SIDE = 16


#: The live warp's spline grid: at 256 px, 64 points a side took the warp from 20.1 to 7.8 ms a frame and
#: moved its pixels by 0.13 of 255 on average (33 at most) against 128
#: (``benchmarks/bench_live.py``, 2-core AMD EPYC, lightly loaded).
LIVE_SPLINE_GRID = 64


@dataclass(frozen=True)
class LiveConfig:
    output_size: int = option(DEFAULT_OUTPUT_SIZE, "side of the generated face in pixels")
    reference_frames: int = option(5, "the first frames with a face, averaged, are the neutral pose (re-centre "
                                   "sets it again)")
    retarget: str = option(RenderConfig.retarget, "relative: the camera's motion on the avatar's face shape; absolute: "
                           "the camera's landmarks as they are", choices=list(RETARGET_MODES))
    smooth: bool = option(True, "smooth the landmarks over time (One-Euro filter)")
    camera_fps: float = option(25.0, "the camera's frame rate, for the smoothing (the live command uses its camera's or "
                               "video's own)")
    mark_position: str = option(RenderConfig.mark_position, "corner of the visible 'synthetic' mark",
                                choices=list(POSITIONS))
    track: TrackConfig = option(TrackConfig(), "following the face between detections")
    rate_window: int = option(25, "frames/s is measured over this many frames")
    spline_grid: int = option(LIVE_SPLINE_GRID, "side of the grid the warp's spline is evaluated on (animate uses "
                              "warp.GRID_SIZE, 128): coarser is faster")
    generator: bool = option(GENERATOR_BY_DEFAULT, "also run the learned generator over the warp, inside the mouth "
                             "(as animate's --generator)")
    mouth: bool = option(MOUTH_BY_DEFAULT, "repaint open mouths with the mouth-window generator (as animate's --mouth)")
    bf16: bool = option(False, "run the generator under bfloat16 autocast where the hardware multiplies bfloat16 (CUDA, "
                        "CPUs with AMX; elsewhere it would be emulated, so float32 runs); pixel values within 1 of "
                        "float32's")

    def __post_init__(self) -> None:
        if self.output_size < 32:
            raise ValueError(f"output_size must be at least 32, got {self.output_size}")
        if self.reference_frames < 1 or self.camera_fps <= 0 or self.rate_window < 2 or self.spline_grid < 8:
            raise ValueError("reference_frames >= 1, camera_fps > 0, rate_window >= 2 and spline_grid >= 8 are needed")
        if self.retarget not in RETARGET_MODES:
            raise ValueError(f"retarget must be one of {RETARGET_MODES}, got {self.retarget!r}")
        if self.mark_position not in POSITIONS:
            raise ValueError(f"mark_position must be one of {POSITIONS}, got {self.mark_position!r}")


@dataclass(frozen=True)
class LiveFrame:
    """What one step shows: the marked face and how it went."""

    image: np.ndarray  # (S, S, 3) uint8 with the SYNTHETIC mark
    face_found: bool  # False: ``image`` is the last good frame (or the avatar at rest before any face)
    hint: str | None  # for the person in front of the camera
    latency_ms: float  # from the camera frame's capture to this image being ready
    fps: float  # output frames per second over the last ``rate_window`` steps (0 until two steps)
    timings_ms: dict[str, float] = field(default_factory=dict)  # per stage of ``STAGES``
    index: int = 0  # steps taken by the session, this one included
    calibrating: bool = False  # still collecting the neutral reference
    captured_at: float = 0.0  # when the camera frame shown here was captured (the session's clock)


class LiveSession:
    """One person's live loop: the avatar, the smoother, the retargeting reference and the last frame.

    Steps of one session run one at a time (a lock: a browser may send the next frame before the last one
    is done); sessions are independent of each other and may share an avatar and a detector (both are
    read-only here; the dlib detector locks itself).
    """

    def __init__(self, avatar: Avatar, config: LiveConfig = LiveConfig(), detector: LandmarkDetector | None = None,
                 clock: Callable[[], float] = time.monotonic, limits: Limits | None = None) -> None:
        largest = (limits or Limits.from_env()).max_output_size
        if config.output_size > largest:
            raise ValueError(f"output_size {config.output_size} is over this server's limit of {largest} "
                             "(TALKING_HEAD_MAX_OUTPUT_SIZE)")
        self.avatar, self.config, self.clock = avatar, config, clock
        self.detector = detector or get_detector("dlib")
        self.tracker = FaceTracker(self.detector, config.track)
        self.generate = BatchGenerator(avatar, 1)
        self.smoother = LandmarkSmoother(fps=config.camera_fps) if config.smooth else None
        self.retargeter = Retargeter(avatar.source_landmarks, config.retarget)
        self._neutral: list[np.ndarray] = []
        self._done: collections.deque[float] = collections.deque(maxlen=config.rate_window)
        self.steps = 0
        # One lock per half, so that run_live's two threads and a re-centre from a third never meet.
        self._prepare_lock, self._finish_lock = threading.Lock(), threading.Lock()
        rest = fit_height(np.ascontiguousarray(avatar.source_crop), config.output_size)
        self.last_image = stamp_synthetic(rest, config.mark_position)  # the avatar at rest until a face shows

    @property
    def calibrating(self) -> bool:
        return len(self._neutral) < self.config.reference_frames

    def recentre(self) -> None:
        """The next ``reference_frames`` frames with a face become the neutral pose again."""
        with self._prepare_lock:
            self._neutral.clear()
            self.retargeter.reference = None
            if self.smoother:
                self.smoother.reset()

    def step(self, frame: np.ndarray, captured_at: float | None = None) -> LiveFrame:
        """The avatar posed as the face in ``frame`` (RGB; any layout ``to_rgb_uint8`` accepts).

        ``captured_at`` is the frame's capture time on ``clock`` (default: now), for the latency.
        """
        return self.finish(self.prepare(frame, captured_at))

    def prepare(self, frame: np.ndarray, captured_at: float | None = None) -> PreparedFrame:
        """The first half of a step: the face found, smoothed, retargeted, and the avatar's shots warped onto it."""
        captured_at = self.clock() if captured_at is None else captured_at
        with self._prepare_lock, torch.inference_mode():
            return self._prepare(frame, captured_at)

    def _prepare(self, frame: np.ndarray, captured_at: float) -> PreparedFrame:
        start = self.clock()
        timings = dict.fromkeys(STAGES, 0.0)
        face = None
        try:
            image = to_rgb_uint8(frame)
            if min(image.shape[:2]) >= MIN_FRAME_SIDE:
                face = self.tracker(image)
        except ValueError as error:  # not an image at all (None, a wrong shape or dtype): keep going
            logger.warning("live: unusable frame (%s)", error)
        timings["landmarks"] = (self.clock() - start) * 1000
        if face is None:
            hint = HINT_NO_FACE_YET if self.retargeter.reference is None else HINT_FACE_LOST
            return PreparedFrame(captured_at, timings, None, None, hint, self.calibrating)
        mark = self.clock()
        landmarks = self.smoother(face.landmarks) if self.smoother else face.landmarks
        if self.calibrating:
            self._neutral.append(np.asarray(landmarks, np.float64))
            self.retargeter.reference = np.mean(self._neutral, axis=0)
        target = self.retargeter(landmarks)[None].astype(np.float32)
        timings["retarget"] = (self.clock() - mark) * 1000
        mark = self.clock()
        warped = (texture_for(self.avatar, target, self.config.output_size, self.config.spline_grid)
                  if self.avatar.texture_path else None)
        timings["warp"] = (self.clock() - mark) * 1000
        hint = "Hold still, looking ahead: setting the neutral pose." if self.calibrating else None
        return PreparedFrame(captured_at, timings, target, warped, hint, self.calibrating)

    def finish(self, posed: PreparedFrame) -> LiveFrame:
        """The second half of a step: the generator's face on the warp, marked; the last good frame when
        ``posed`` has no face."""
        with self._finish_lock, torch.inference_mode():
            self.steps += 1
            timings = dict(posed.timings_ms)
            if posed.target is not None:
                mark = self.clock()
                with autocast(self.avatar.generator.psi.device, self.config.bf16):
                    face_image = finish_faces(self.avatar, posed.target, self.config.output_size, posed.warped,
                                              self.generate, self.config.generator, self.config.mouth)[0]
                timings["generate"] = (self.clock() - mark) * 1000
                mark = self.clock()
                self.last_image = stamp_synthetic(face_image, self.config.mark_position)
                timings["mark"] = (self.clock() - mark) * 1000
            now = self.clock()
            self._done.append(now)
            fps = (len(self._done) - 1) / (self._done[-1] - self._done[0]) if len(self._done) > 1 and \
                self._done[-1] > self._done[0] else 0.0
            return LiveFrame(self.last_image, posed.target is not None, posed.hint, (now - posed.captured_at) * 1000,
                             fps, timings, self.steps, posed.calibrating, posed.captured_at)


@dataclass(frozen=True)
class PreparedFrame:
    """A frame half-way through a step (:meth:`LiveSession.prepare`): where the avatar's face goes, its warp."""

    captured_at: float
    timings_ms: dict[str, float]
    target: np.ndarray | None  # (1, 68, 2) crop pixels; None: no face in the frame
    warped: torch.Tensor | None  # (1, 3, S, S) the shots warped onto it (texture path)
    hint: str | None
    calibrating: bool


def run_live(frames: Iterable[np.ndarray | tuple[np.ndarray, float]], avatar: Avatar,
             config: LiveConfig = LiveConfig(), detector: LandmarkDetector | None = None,
             session: LiveSession | None = None) -> Iterator[LiveFrame]:
    """One :class:`LiveFrame` per frame, in order. A frame may come as ``(frame, captured_at)``
    (``time.monotonic`` seconds, as :class:`CameraFeed` yields them) for the latency to count the wait
    before the step.

    The next frame is prepared (landmarks, retargeting, warp) on a thread of its own while this one is
    generated; it is taken from ``frames`` only when generation of the last one starts (``ThreadedStage`` with
    depth 0), so a camera's frame is as fresh as it can be.
    """
    session = session or LiveSession(avatar, config, detector)

    def prepared() -> Iterator[PreparedFrame]:
        for item in frames:
            frame, captured_at = item if isinstance(item, tuple) else (item, None)
            yield session.prepare(frame, captured_at)

    with ThreadedStage(prepared(), depth=0, name="live landmarks+warp") as posed:
        for item in posed:
            yield session.finish(item)


class CameraFeed:
    """Frames as a camera delivers them: read on a thread of their own, newest first.

    ``source`` yields RGB frames: a camera's reads (which wait for the camera), or a video's frames
    with ``fps`` set to release them at that rate, as a camera would. Iterating yields
    ``(frame, captured_at)`` for the newest frame not yet taken, waiting for one if needed; frames the
    loop was too slow to take are counted in ``dropped``. Ends when the source ends or on ``close``.
    """

    def __init__(self, source: Iterable[np.ndarray], fps: float | None = None) -> None:
        self.fps, self.dropped, self.captured = fps, 0, 0
        self._latest: tuple[np.ndarray, float] | None = None
        self._ended = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(iter(source),), daemon=True, name="camera")
        self._thread.start()

    def _read(self, frames: Iterator[np.ndarray]) -> None:
        began = time.monotonic()
        try:
            for frame in frames:
                if self._stop.is_set():
                    break
                if self.fps:
                    delay = began + self.captured / self.fps - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        break
                with self._changed:
                    if self._latest is not None:
                        self.dropped += 1
                    self._latest = (frame, time.monotonic())
                    self.captured += 1
                    self._changed.notify()
        except Exception as error:  # noqa: BLE001 - handed to the consumer, not lost on this thread
            self._error = error
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify()

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        while True:
            with self._changed:
                while self._latest is None and not self._ended:
                    self._changed.wait(0.5)
                item, self._latest = self._latest, None
            if item is None:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
