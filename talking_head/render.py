"""The video layer: a video's landmarks, retargeted onto one or more avatars, rendered to an mp4, as a stream.

The faces themselves (landmarks in, face pixels out) are ``talking_head.face_render``'s. The stages, each a function
of its own, run one batch of frames at a time:

    decode (media.iter_video_frames) -> track and smooth (driver_landmarks) -> retarget (retarget_batch)
    -> choose shots and warp (face_render.texture_for) -> generate and composite (render_faces, AvatarColumn)
    -> lay out (FrameLayout.compose) -> encode (media.VideoSink)

and as a pipeline on three threads (``stages.ThreadedStage``): decoding and landmarks, then retargeting to
compositing, then laying out and encoding each work on their own frames at once, a bounded queue
between them, so memory stays flat however long the driving video is (``max_frames_in_flight``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from talking_head.avatar import Avatar
from talking_head.errors import InputError
from talking_head.face_render import GENERATOR_BY_DEFAULT, MOUTH_BY_DEFAULT, BatchGenerator, render_faces
from talking_head.landmarks.align import (
    DEFAULT_RETARGET,
    RETARGET_MODES,
    CropBox,
    Retargeter,
    crop_face,
    from_crop_coords,
)
from talking_head.landmarks.detect import LandmarkDetector
from talking_head.landmarks.smooth import CentredSmoother, smooth_stream
from talking_head.landmarks.track import FaceTracker, TrackConfig
from talking_head.limits import Limits
from talking_head.media import VideoInfo, VideoSink, iter_video_frames, probe_driver
from talking_head.options import option
from talking_head.stages import ThreadedStage
from talking_head.watermark import DEFAULT_POSITION, POSITIONS, stamp_synthetic

logger = logging.getLogger(__name__)

#: progress(fraction in [0, 1], what is happening)
Progress = Callable[[float, str], None]

#: The output's height where ``RenderConfig.output_size`` is not set and the face is not pasted back (at most
#: the limit, ``Limits.max_output_size``); a pasted-back face keeps the photo's own resolution instead
#: (:func:`output_height`).
DEFAULT_OUTPUT_SIZE = 256


@dataclass(frozen=True)
class RenderConfig:
    retarget: str = option(DEFAULT_RETARGET, "relative: the driver's motion on the photo's face shape; absolute: the "
                           "driver's landmarks as they are (the paper)", choices=list(RETARGET_MODES))
    paste_back: bool = option(False, "paste the generated face back into the first photo")
    side_by_side: bool = option(False, "driver | source | result in one video")
    output_size: int | None = option(None, f"height of each panel in pixels, at most the limit (env "
                                     f"TALKING_HEAD_MAX_OUTPUT_SIZE); unset: {DEFAULT_OUTPUT_SIZE}, or with "
                                     f"--paste-back the photo's own resolution, cut around the face to the limit "
                                     f"(the face never smaller than in the photo)")
    generator: bool = option(GENERATOR_BY_DEFAULT, "also run the learned generator over the warp, inside the mouth "
                             "(off by default: on real faces the warp alone scored as well, in half the time; "
                             "pure-synthesis avatars always use it)")
    mouth: bool = option(MOUTH_BY_DEFAULT, "repaint open mouths with the mouth-window generator, where the weights "
                         "have one (off by default: it learnt mouths on synthetic heads; docs/mouth.md)")
    batch_size: int = option(8, "frames generated at once (halved automatically on GPU out-of-memory)")
    max_seconds: float | None = option(None, "longest driving video accepted, in seconds (None: the limit, env "
                                       "TALKING_HEAD_MAX_VIDEO_SECONDS)")
    trim: bool = option(False, "trim a longer driving video to max_seconds instead of rejecting it")
    mark_position: str = option(DEFAULT_POSITION, "corner of the visible 'synthetic' mark", choices=list(POSITIONS))
    smooth: bool = option(True, "smooth the driver's landmarks over time, each frame with as many after it as before "
                          "(no delay)")
    track: TrackConfig = option(TrackConfig(), "following the driver's face between detections")

    def __post_init__(self) -> None:
        if self.retarget not in RETARGET_MODES:
            raise ValueError(f"retarget must be one of {RETARGET_MODES}, got {self.retarget!r}")
        if self.mark_position not in POSITIONS:
            raise ValueError(f"mark_position must be one of {POSITIONS}, got {self.mark_position!r}")
        if (self.output_size is not None and self.output_size < 32) or self.batch_size < 1:  # the largest: a limit
            raise ValueError(f"output_size must be at least 32 and batch_size at least 1, got {self.output_size}, "
                             f"{self.batch_size}")


@dataclass(frozen=True)
class RenderResult:
    path: Path
    num_frames: int
    fps: float
    width: int
    height: int
    has_audio: bool
    frames_without_face: int
    seconds: float


# ---------------------------------------------------------------------------------------------------
# Driver landmarks
# ---------------------------------------------------------------------------------------------------

#: (frame, landmarks, found): a frame without a face carries the last face seen (``found`` False), or None
#: before the first one.
DriverFrame = tuple[np.ndarray, np.ndarray | None, bool]


def driver_landmarks(frames: Iterable[np.ndarray], tracker: FaceTracker, smoother: CentredSmoother | None
                     ) -> Iterator[DriverFrame]:
    """The driver's face in each frame, followed by ``tracker`` and smoothed over time by ``smoother``, with as
    many frames after each as before it (no delay: ``landmarks.smooth``)."""

    def tracked() -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        for frame in frames:
            face = tracker(frame)
            yield frame, None if face is None else face.landmarks

    last: np.ndarray | None = None
    for frame, landmarks in smooth_stream(tracked(), smoother) if smoother else tracked():
        if landmarks is not None:
            last = landmarks
        yield frame, last, landmarks is not None


# ---------------------------------------------------------------------------------------------------
# Retargeting (the faces themselves: face_render)
# ---------------------------------------------------------------------------------------------------

def retarget_batch(retargeter: Retargeter, driver: list[np.ndarray | None], fallback: np.ndarray) -> np.ndarray:
    """(T, 68, 2) target landmarks in the avatar's crop pixels; ``fallback`` where the driver has no face yet."""
    return np.stack([retargeter(lm) if lm is not None else fallback for lm in driver]).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# Layout of output frames
# ---------------------------------------------------------------------------------------------------

def _even(n: float) -> int:
    return max(2, int(round(n / 2)) * 2)


#: The paste-back mask's feather, as a share of the crop's side. On the texture path the crop's border is the
#: photo's own pixels (the warp pins it), so a thin feather there suffices; the former 6 % blended a head that
#: had moved down with the photo's unmoved neck, a grey band under the chin at 512 px. A pure-synthesis crop
#: is feathered widely around the face, whose painted surroundings are not the photo's.
TEXTURE_PASTE_FEATHER = 0.015
SYNTHESIS_PASTE_FEATHER = 0.06


def photo_window(photo: np.ndarray, box: CropBox, max_side: int) -> tuple[np.ndarray, CropBox]:
    """The part of ``photo`` around the face's crop ``box``, at most ``max_side`` a side (even sides), and the
    box in it.

    Cut, not shrunk: a small face in a big photo (a half-body shot, 3000 x 2000) keeps its own pixels, where
    shrinking the whole photo to ``max_side`` made it a few dozen pixels tall. Only a face whose crop is over
    half of ``max_side`` is shrunk, to half of it, so that some of the photo still shows around it (at the
    1024 px limit that is 512 px: the texture bank's ``BANK_SIZE``, the finest detail the warp has anyway).
    """
    x0, y0, side = box
    scale = min(1.0, max_side / (2 * side))
    if scale < 1.0:
        size = (max(2, round(photo.shape[1] * scale)), max(2, round(photo.shape[0] * scale)))
        photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        x0, y0, side = x0 * scale, y0 * scale, side * scale
    height, width = photo.shape[:2]
    cut_h, cut_w = (max(2, min(n, max_side) // 2 * 2) for n in (height, width))
    top = int(np.clip(round(y0 + side / 2 - cut_h / 2), 0, max(0, height - cut_h)))
    left = int(np.clip(round(x0 + side / 2 - cut_w / 2), 0, max(0, width - cut_w)))
    return photo[top:top + cut_h, left:left + cut_w], (x0 - left, y0 - top, side)


@dataclass(frozen=True)
class PasteView:
    """What a pasted-back panel shows: an avatar's photo, or the part of it around the face, and the face's
    crop box in it."""

    photo: np.ndarray
    box: CropBox

    @classmethod
    def of(cls, avatar: Avatar, config: RenderConfig, limits: Limits) -> PasteView:
        """The whole photo where ``config`` sets the output's height (it is fitted to it); else the photo at its
        own resolution, cut around the face to the limit (:func:`photo_window`)."""
        if config.output_size is not None:
            return cls(avatar.photo, avatar.photo_box)
        return cls(*photo_window(avatar.photo, avatar.photo_box, limits.max_output_size))


def output_height(config: RenderConfig, views: list[PasteView], limits: Limits) -> int:
    """The output's height, resolved here only: ``config.output_size`` where set; else a pasted-back photo's
    own (the tallest of ``views``), or ``DEFAULT_OUTPUT_SIZE`` (at most the limit)."""
    if config.output_size is not None:
        return _even(config.output_size)
    if config.paste_back:
        return max(_even(view.photo.shape[0]) for view in views)
    return _even(min(DEFAULT_OUTPUT_SIZE, limits.max_output_size))


def paste_into_photo(avatar: Avatar, face: np.ndarray, landmarks: np.ndarray, height: int,
                     view: PasteView | None = None) -> np.ndarray:
    """Blend a generated crop back into the first photo (``view``, default the avatar's whole photo) through a
    soft mask; then fit to ``height``.

    ``landmarks`` are the generated face's (crop pixels of ``face``). On the texture path the crop's
    border is the photo's own background (the warp pins it), so the whole crop goes back in under a
    mask feathered thinly at its border (``TEXTURE_PASTE_FEATHER``): hair and outline move with the head
    and no seam shows. A pure-synthesis crop is pasted only inside the face (its hull raised to the
    forehead), a mask that follows the face as it moves, so the photo's own background stays outside it.
    Only the crop's box and a margin of two feathers around it are resized and blended (``paste_region``,
    ``placed``): the rest of the photo is copied as it is (a cubic warp and a blend of all of it took 10-12 ms a
    frame at 512 px).
    """
    view = view or PasteView(avatar.photo, avatar.photo_box)
    photo, box, size = view.photo, view.box, face.shape[0]
    x0, y0, side = box
    feather = max(3, int(side * (TEXTURE_PASTE_FEATHER if avatar.texture_path else SYNTHESIS_PASTE_FEATHER))) | 1
    rows, cols = paste_region(box, 2 * feather + 2, photo.shape[:2])
    warped = placed(face, box, rows, cols)
    mask = np.zeros(warped.shape[:2], dtype=np.float32)
    origin = np.array([cols.start, rows.start], np.float32)
    if avatar.texture_path:
        inset = feather + 1
        corners = np.array([[inset, inset], [size - 1 - inset, size - 1 - inset]], np.float64)
        (ax, ay), (bx, by) = (from_crop_coords(corners, box, size) - origin).round().astype(int)
        cv2.rectangle(mask, (ax, ay), (bx, by), 1.0, thickness=-1)
    else:
        hull_points = from_crop_coords(landmarks, box, size) - origin
        top = hull_points[17:27].copy()
        top[:, 1] -= (hull_points[:, 1].max() - hull_points[:, 1].min()) / 3
        hull = cv2.convexHull(np.concatenate([hull_points[:17], top]).astype(np.float32)).astype(np.int32)
        cv2.fillConvexPoly(mask, hull, 1.0)
    mask = cv2.GaussianBlur(cv2.erode(mask, np.ones((feather, feather), np.uint8)), (feather * 2 + 1,) * 2, 0)
    out = photo.copy()
    under = out[rows, cols]
    out[rows, cols] = (warped * mask[..., None] + under * (1 - mask[..., None])).round().astype(np.uint8)
    return fit_height(out, _even(height))


def placed(face: np.ndarray, box: CropBox, rows: slice, cols: slice) -> np.ndarray:
    """``face`` (a square crop) resized to its ``box`` and put on a black canvas of the photo's ``rows`` and
    ``cols``. The box is rounded to whole pixels (at most half a pixel off, the same on every frame of a video):
    a resize is twenty times faster than OpenCV's cubic ``warpAffine``, which has no vectorised path."""
    x0, y0, side = box
    n = max(1, round(side))
    if face.shape[0] != n:
        face = cv2.resize(face, (n, n), interpolation=cv2.INTER_AREA if n < face.shape[0] else cv2.INTER_CUBIC)
    canvas = np.zeros((rows.stop - rows.start, cols.stop - cols.start, 3), np.uint8)
    top, left = round(y0) - rows.start, round(x0) - cols.start
    r0, c0 = max(0, -top), max(0, -left)
    r1, c1 = min(n, canvas.shape[0] - top), min(n, canvas.shape[1] - left)
    if r1 > r0 and c1 > c0:
        canvas[top + r0:top + r1, left + c0:left + c1] = face[r0:r1, c0:c1]
    return canvas


def paste_region(box: CropBox, margin: int, shape: tuple[int, int]) -> tuple[slice, slice]:
    """The rows and columns of a photo of ``shape`` (rows, cols) that a crop ``box`` covers, ``margin`` pixels
    more a side, within the photo: where a pasted face can change a pixel."""
    x0, y0, side = box
    rows = slice(max(0, int(np.floor(y0)) - margin), min(shape[0], int(np.ceil(y0 + side)) + margin))
    cols = slice(max(0, int(np.floor(x0)) - margin), min(shape[1], int(np.ceil(x0 + side)) + margin))
    return rows, cols


def face_size(view: PasteView, height: int, max_size: int) -> int:
    """The side of the face crop as it appears in ``view`` fitted to ``height`` pixels (paste-back), at most
    ``max_size``: the face is rendered at the size it is shown."""
    return max(32, min(max_size, round(view.box[2] * height / view.photo.shape[0])))


def source_panel(avatar: Avatar, height: int) -> np.ndarray:
    """The first photo's face crop, ``height`` pixels tall, cut from the photo itself (side-by-side's photo
    panel): the network's small crop scaled up looked softer than the result beside it, the opposite of the
    truth."""
    points = from_crop_coords(avatar.source_landmarks, avatar.photo_box, avatar.source_crop.shape[0])
    return crop_face(avatar.photo, points, height, avatar.photo_box)[0]


def fit_height(image: np.ndarray, height: int) -> np.ndarray:
    width = _even(image.shape[1] * height / image.shape[0])
    if image.shape[:2] == (height, width):
        return image
    interpolation = cv2.INTER_AREA if image.shape[0] > height else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


CAPTION_FONT = cv2.FONT_HERSHEY_SIMPLEX
CAPTION_MARGIN = 6  # pixels from the image's left and top edges


def caption(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` with ``text`` in its top-left corner, one line per ``\\n`` (column names of comparison videos).

    The size follows the image's height, shrunk where the widest line would run past the right edge. The dark
    outline is the text drawn again with the same pen, a pen's width around itself: drawn with a thicker pen
    instead, every glyph's advance grew with it, and a long caption's outline drifted into a dark second copy.
    """
    out = image.copy()
    lines = text.split("\n")
    scale, room = max(0.35, image.shape[0] / 400), image.shape[1] - 2 * CAPTION_MARGIN
    while scale > 0.2 and max(cv2.getTextSize(line, CAPTION_FONT, scale, _pen(scale))[0][0] + 2 * _pen(scale)
                              for line in lines) > room:
        scale *= 0.95  # glyph advances are rounded at each size: shrink until it is measured to fit
    step, pen = int(26 * scale) + 2, _pen(scale)
    for row, line in enumerate(lines):
        origin = (CAPTION_MARGIN, CAPTION_MARGIN + int(18 * scale) + row * step)
        for dx, dy in ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)):
            cv2.putText(out, line, (origin[0] + dx * pen, origin[1] + dy * pen), CAPTION_FONT, scale, (0, 0, 0), pen,
                        cv2.LINE_AA)
        cv2.putText(out, line, origin, CAPTION_FONT, scale, (255, 255, 255), pen, cv2.LINE_AA)
    return out


def _pen(scale: float) -> int:
    """A caption's stroke for a text ``scale``: it grows with the text (one pixel was faint at 512 px)."""
    return max(1, int(1.6 * scale))


@dataclass(frozen=True)
class FrameLayout:
    """The output frame, worked out once: [driver] [source photo] avatar columns, each ``height`` tall.

    ``compose`` builds frames of exactly ``width`` (the sink is opened with it), so the two can never
    disagree.
    """

    height: int
    column_widths: tuple[int, ...]  # one per avatar
    driver_width: int  # 0: no driver panel
    source: np.ndarray | None  # the source panel (side by side with one avatar), already fitted
    labels: tuple[str, ...] | None
    mark_position: str
    views: tuple[PasteView | None, ...]  # one per avatar: what its pasted-back panel shows (None: no paste-back)

    @classmethod
    def plan(cls, avatars: list[Avatar], driver_size: tuple[int, int], config: RenderConfig,
             labels: list[str] | None, limits: Limits) -> "FrameLayout":
        views = [PasteView.of(a, config, limits) for a in avatars] if config.paste_back else []
        height = output_height(config, views, limits)
        columns = tuple(_even(v.photo.shape[1] * height / v.photo.shape[0]) for v in views) or (height,) * len(avatars)
        show_driver = config.side_by_side or bool(labels)
        driver_width = _even(driver_size[0] * height / driver_size[1]) if show_driver else 0
        source = source_panel(avatars[0], height) if config.side_by_side and not labels else None
        return cls(height, columns, driver_width, source, tuple(labels) if labels else None, config.mark_position,
                   tuple(views) or (None,) * len(avatars))

    @property
    def width(self) -> int:
        return sum(self.column_widths) + self.driver_width + (self.source.shape[1] if self.source is not None else 0)

    def compose(self, driver_frame: np.ndarray, faces: list[np.ndarray]) -> np.ndarray:
        """One output frame from the driver's frame and each avatar's face (already ``height`` tall)."""
        panels = [caption(p, text) for p, text in zip(faces, self.labels)] if self.labels else list(faces)
        if self.source is not None:
            panels.insert(0, self.source)
        if self.driver_width:
            panels.insert(0, caption(cv2.resize(driver_frame, (self.driver_width, self.height),
                                              interpolation=cv2.INTER_AREA), "driver"))
        return stamp_synthetic(np.concatenate(panels, axis=1), self.mark_position)


# ---------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DrivingVideo:
    """A driving video as it will be rendered."""

    info: VideoInfo  # as decoded: at the capped frame rate and size (``media.probe_driver``)
    max_frames: int | None  # where a longer video is trimmed; None: played to its end

    @property
    def frames(self) -> int:
        """How many frames will be rendered."""
        return min(self.info.num_frames, self.max_frames or self.info.num_frames)


def check_output_size(config: RenderConfig, limits: Limits) -> None:
    """An :class:`InputError` when ``config`` asks for a taller output than ``limits`` allow (a driver's, a voice's)."""
    if config.output_size is not None and config.output_size > limits.max_output_size:
        raise InputError(f"the output height is {config.output_size} px; at most {limits.max_output_size} px can be "
                         f"made here")


def check_driver(driver: str | Path, config: RenderConfig, limits: Limits) -> DrivingVideo:
    """``driver`` as ``config`` will render it under ``limits``, or an :class:`InputError` saying why it cannot
    be (unreadable, too long without ``config.trim``, an output size over the limit). Cheap: it reads the
    container, so a request can be refused before any model work."""
    check_output_size(config, limits)
    info = probe_driver(driver, limits)
    longest = limits.max_video_seconds if config.max_seconds is None else config.max_seconds
    if info.duration <= longest + 1e-6:
        return DrivingVideo(info, None)
    if not config.trim:
        raise InputError(f"the driving video is {info.duration:.1f} s long; the limit is {longest:g} s. Trim it and "
                         f"try again.")
    return DrivingVideo(info, int(longest * info.fps + 1e-6))  # 29/25 s at 25 fps is 29 frames, not 28


@dataclass(frozen=True)
class AvatarColumn:
    """One avatar's column of the output: retarget -> warp -> generate and composite -> its panels."""

    avatar: Avatar
    retargeter: Retargeter
    generate: BatchGenerator
    face_size: int  # the side the face is rendered at
    height: int  # of a panel
    view: PasteView | None  # where the face is pasted back (None: the face alone is the panel)
    generator: bool
    mouth: bool

    @classmethod
    def plan(cls, avatar: Avatar, layout: FrameLayout, config: RenderConfig, limits: Limits,
             view: PasteView | None) -> AvatarColumn:
        """``avatar``'s column in ``layout``, pasted back into ``view`` (its entry of ``layout.views``)."""
        size = face_size(view, layout.height, limits.max_output_size) if view else layout.height
        return cls(avatar, Retargeter(avatar.source_landmarks, config.retarget),
                   BatchGenerator(avatar, config.batch_size), size, layout.height, view, config.generator,
                   config.mouth)

    def __call__(self, driver: list[np.ndarray | None]) -> list[np.ndarray]:
        """A panel ``height`` tall per frame of the driver's (smoothed) landmarks."""
        targets = retarget_batch(self.retargeter, driver, self.avatar.source_landmarks)
        faces = render_faces(self.avatar, targets, self.face_size, self.generate, self.generator, self.mouth)
        if self.view is None:
            return [fit_height(face, self.height) for face in faces]
        scale = np.float32(self.face_size / self.avatar.image_size)
        return [paste_into_photo(self.avatar, face, target * scale, self.height, self.view)
                for face, target in zip(faces, targets)]


#: How many batches each queue of the pipeline holds: one is enough for the next stage never to wait
#: while this one has work; more would only hold more frames.
QUEUE_BATCHES = 1


def max_frames_in_flight(batch_size: int, look_ahead: int = 0) -> int:
    """The most driver frames decoded but not yet encoded: the landmark queue, the batch being gathered,
    the one being rendered, the rendered queue and the one being encoded, each at most a batch, the frame
    the decoding thread holds and the smoother's ``look_ahead``."""
    return (2 * QUEUE_BATCHES + 3) * batch_size + 1 + look_ahead


def render_driven_video(avatars: list[Avatar], driver: str | Path, out_path: str | Path, detector: LandmarkDetector,
                        config: RenderConfig = RenderConfig(), labels: list[str] | None = None,
                        progress: Progress | None = None, limits: Limits | None = None) -> RenderResult:
    """Animate every avatar with the driver's motion; one column per avatar (labelled when ``labels``).

    Frames before the driver's first detected face show the photo's own pose; later frames without a
    face repeat the last face seen. A driver with no face at all is an :class:`InputError`, raised as
    soon as its first ``limits.face_within_seconds`` hold none: a long faceless video is refused there,
    not after rendering every frame. The driver is checked and decoded as :func:`check_driver` says,
    under ``limits`` (default :meth:`Limits.from_env`). Decoding and landmarks, rendering, and laying
    out and encoding run at once on three threads (the module's docstring); an error in any of them
    stops the others and is raised here.
    """
    if not avatars:
        raise ValueError("need at least one avatar")
    began = time.monotonic()
    limits = limits or Limits.from_env()
    driving = check_driver(driver, config, limits)
    info, max_frames, total = driving.info, driving.max_frames, driving.frames
    layout = FrameLayout.plan(avatars, (info.width, info.height), config, labels, limits)
    columns = [AvatarColumn.plan(avatar, layout, config, limits, view) for avatar, view in zip(avatars, layout.views)]
    tracker = FaceTracker(detector, config.track)
    smoother = CentredSmoother() if config.smooth else None
    faceless_limit = limits.face_within_seconds * info.fps

    def render(batches: Iterable[list[DriverFrame]]) -> Iterator[tuple[list[DriverFrame], list[list[np.ndarray]]]]:
        seen = faceless = 0
        with torch.inference_mode():  # grad mode is per thread: this one is not the caller's
            for batch in batches:
                seen, faceless = seen + len(batch), faceless + sum(not found for _, _, found in batch)
                if faceless == seen and faceless >= faceless_limit:
                    raise InputError(f"no face was found in the first {limits.face_within_seconds:g} s of the "
                                     f"driving video: use a video where a face is visible from the start")
                yield batch, [column([lm for _, lm, _ in batch]) for column in columns]

    faceless, written = 0, 0
    with ExitStack() as stages:  # closed in reverse: the threads stop before the sink is closed
        sink = stages.enter_context(VideoSink(out_path, layout.width, layout.height, info.fps,
                                              audio_from=driver if info.has_audio else None,
                                              audio_seconds=max_frames / info.fps if max_frames else None))
        decoded = iter_video_frames(driver, max_frames, info)
        landmarks = stages.enter_context(ThreadedStage(driver_landmarks(decoded, tracker, smoother),
                                               QUEUE_BATCHES * config.batch_size, "decode+landmarks"))
        rendered = stages.enter_context(ThreadedStage(render(_batched(landmarks, config.batch_size)), QUEUE_BATCHES,
                                              "retarget+warp+generate"))
        for batch, panels in rendered:
            faceless += sum(not found for _, _, found in batch)
            for i, (frame, _, _) in enumerate(batch):
                sink.write(layout.compose(frame, [column[i] for column in panels]))
                written += 1
            if progress:
                progress(min(1.0, written / max(total, 1)), "rendering")
        if written == 0 or faceless == written:
            raise InputError("no face was found in any frame of the driving video")
    return RenderResult(Path(out_path), written, info.fps, layout.width, layout.height, info.has_audio, faceless,
                        time.monotonic() - began)


def _batched(items: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
