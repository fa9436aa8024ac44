"""Driving: a video's landmarks, retargeted onto one or more avatars, rendered to an mp4, as a stream.

Frames are decoded, their landmarks found and smoothed, retargeted, drawn, generated in batches and
encoded one batch at a time: memory stays flat however long the driving video is.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from talking_head.avatar import Avatar
from talking_head.errors import InputError
from talking_head.landmarks.align import LandmarkSmoother, Retargeter, from_crop_coords
from talking_head.landmarks.detect import LandmarkDetector
from talking_head.landmarks.rasterize import draw_landmarks
from talking_head.media import VideoSink, iter_video_frames, probe_video
from talking_head.options import option
from talking_head.watermark import POSITIONS, stamp_synthetic

logger = logging.getLogger(__name__)

#: progress(fraction in [0, 1], what is happening)
Progress = Callable[[float, str], None]


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


#: The largest output height accepted (env TALKING_HEAD_MAX_OUTPUT_SIZE): memory per frame and
#: encoding time grow with its square.
MAX_OUTPUT_SIZE = int(_env_float("TALKING_HEAD_MAX_OUTPUT_SIZE", 1024))


@dataclass(frozen=True)
class RenderConfig:
    retarget: str = option("relative", "relative: the driver's motion on the photo's face shape; absolute: the "
                           "driver's landmarks as they are (the paper)", choices=["relative", "absolute"])
    paste_back: bool = option(False, "paste the generated face back into the first photo")
    side_by_side: bool = option(False, "driver | source | result in one video")
    output_size: int = option(min(256, MAX_OUTPUT_SIZE), "height of each generated panel in pixels (at most "
                              f"{MAX_OUTPUT_SIZE}; env TALKING_HEAD_MAX_OUTPUT_SIZE)")
    batch_size: int = option(8, "frames generated at once (halved automatically on GPU out-of-memory)")
    max_seconds: float = option(_env_float("TALKING_HEAD_MAX_VIDEO_SECONDS", 60.0),
                                "longest driving video accepted, in seconds (env TALKING_HEAD_MAX_VIDEO_SECONDS)")
    trim: bool = option(False, "trim a longer driving video to max_seconds instead of rejecting it")
    mark_position: str = option("bottom-right", "corner of the visible 'synthetic' mark", choices=list(POSITIONS))
    smooth: bool = option(True, "smooth the driver's landmarks over time (One-Euro filter)")

    def __post_init__(self) -> None:
        if self.retarget not in ("relative", "absolute"):
            raise ValueError(f"retarget must be 'relative' or 'absolute', got {self.retarget!r}")
        if self.mark_position not in POSITIONS:
            raise ValueError(f"mark_position must be one of {POSITIONS}, got {self.mark_position!r}")
        if not 32 <= self.output_size <= MAX_OUTPUT_SIZE or self.batch_size < 1:
            raise ValueError(f"output_size must be in [32, {MAX_OUTPUT_SIZE}] and batch_size >= 1, got "
                             f"{self.output_size}, {self.batch_size}")


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

def driver_landmarks(frames: Iterator[np.ndarray], detector: LandmarkDetector, fps: float, smooth: bool
                     ) -> Iterator[tuple[np.ndarray, np.ndarray | None, bool]]:
    """(frame, landmarks, found) per frame, landmarks smoothed over time.

    A frame without a face carries the last face seen (``found`` False), or None before the first one.
    """
    smoother = LandmarkSmoother(fps=fps) if smooth else None
    last: np.ndarray | None = None
    for frame in frames:
        faces = detector.detect(frame)
        if faces:
            last = smoother(faces[0].landmarks) if smoother else faces[0].landmarks
        yield frame, last, bool(faces)


# ---------------------------------------------------------------------------------------------------
# Composition of output frames
# ---------------------------------------------------------------------------------------------------

def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def _even(n: float) -> int:
    return max(2, int(round(n / 2)) * 2)


def paste_into_photo(avatar: Avatar, face: np.ndarray, landmarks: np.ndarray, height: int) -> np.ndarray:
    """Blend a generated crop back into the first photo, through a soft mask around the face.

    ``landmarks`` are the generated face's (crop pixels): the mask follows the face as it moves, so
    the photo's own background stays outside it.
    """
    photo, size = avatar.photo, face.shape[0]
    x0, y0, side = avatar.photo_box
    scale = side / size
    matrix = np.array([[scale, 0, x0], [0, scale, y0]], dtype=np.float64)
    warped = cv2.warpAffine(face, matrix, (photo.shape[1], photo.shape[0]), flags=cv2.INTER_LINEAR)
    hull_points = from_crop_coords(landmarks, avatar.photo_box, size)
    # The face hull, raised to include the forehead (brows up by a third of the face height).
    top = hull_points[17:27].copy()
    top[:, 1] -= (hull_points[:, 1].max() - hull_points[:, 1].min()) / 3
    hull = cv2.convexHull(np.concatenate([hull_points[:17], top]).astype(np.float32)).astype(np.int32)
    mask = np.zeros(photo.shape[:2], dtype=np.float32)
    cv2.fillConvexPoly(mask, hull, 1.0)
    feather = max(3, int(side * 0.06)) | 1
    mask = cv2.GaussianBlur(cv2.erode(mask, np.ones((feather, feather), np.uint8)), (feather * 2 + 1,) * 2, 0)
    blended = (warped * mask[..., None] + photo * (1 - mask[..., None])).astype(np.uint8)
    width = _even(photo.shape[1] * height / photo.shape[0])
    return cv2.resize(blended, (width, _even(height)), interpolation=cv2.INTER_AREA)


def fit_height(image: np.ndarray, height: int) -> np.ndarray:
    width = _even(image.shape[1] * height / image.shape[0])
    interpolation = cv2.INTER_AREA if image.shape[0] > height else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def label(image: np.ndarray, text: str) -> np.ndarray:
    """A caption in the top-left corner (column names of comparison videos)."""
    out = image.copy()
    scale = max(0.35, image.shape[0] / 400)
    cv2.putText(out, text, (6, int(22 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, int(22 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


# ---------------------------------------------------------------------------------------------------
# Generation with an out-of-memory fallback
# ---------------------------------------------------------------------------------------------------

class BatchGenerator:
    """Runs an avatar's generator on batches, halving the batch on CUDA out-of-memory instead of failing."""

    def __init__(self, avatar: Avatar, batch_size: int) -> None:
        self.avatar, self.batch_size = avatar, batch_size

    def __call__(self, landmark_images: torch.Tensor) -> torch.Tensor:
        outputs, start = [], 0
        while start < landmark_images.shape[0]:
            chunk = landmark_images[start:start + self.batch_size]
            try:
                outputs.append(self.avatar.generator.generate(chunk).cpu())
            except torch.cuda.OutOfMemoryError:
                if self.batch_size == 1:
                    raise
                self.batch_size //= 2
                torch.cuda.empty_cache()
                logger.warning("GPU out of memory: rendering in batches of %d", self.batch_size)
                continue
            start += chunk.shape[0]
        return torch.cat(outputs)


# ---------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------

def render_driven_video(avatars: list[Avatar], driver: str | Path, out_path: str | Path, detector: LandmarkDetector,
                        config: RenderConfig = RenderConfig(), labels: list[str] | None = None,
                        progress: Progress | None = None) -> RenderResult:
    """Animate every avatar with the driver's motion; one column per avatar (labelled when ``labels``).

    Frames before the driver's first detected face show the photo's own pose; later frames without a
    face repeat the last face seen. A driver with no face at all is an :class:`InputError`.
    """
    if not avatars:
        raise ValueError("need at least one avatar")
    began = time.monotonic()
    info = probe_video(driver)
    max_frames = None
    if info.duration > config.max_seconds + 1e-6:
        if not config.trim:
            raise InputError(f"the driving video is {info.duration:.1f} s long; the limit is {config.max_seconds:g} s "
                             f"(trim it, or ask for trimming)")
        max_frames = int(config.max_seconds * info.fps)
    total = min(info.num_frames, max_frames or info.num_frames)
    retargeters = [Retargeter(a.source_landmarks, config.retarget) for a in avatars]
    generators = [BatchGenerator(a, config.batch_size) for a in avatars]
    height = _even(config.output_size)
    show_driver = config.side_by_side or bool(labels)
    width = sum(_even(a.photo.shape[1] * height / a.photo.shape[0]) if config.paste_back else height for a in avatars)
    width += (_even(info.width * height / info.height) if show_driver else 0)
    width += height if config.side_by_side and not labels else 0
    faceless, written = 0, 0
    stream = driver_landmarks(iter_video_frames(driver, max_frames), detector, info.fps, config.smooth)
    with VideoSink(out_path, width, height, info.fps, audio_from=driver if info.has_audio else None,
                   audio_seconds=max_frames / info.fps if max_frames else None) as sink:
        for batch in _batched(stream, config.batch_size):
            columns = []
            for avatar, retargeter, generate in zip(avatars, retargeters, generators):
                targets = [retargeter(lm) if lm is not None else avatar.source_landmarks for _, lm, _ in batch]
                drawings = np.stack([draw_landmarks(t, avatar.image_size) for t in targets])
                faces = to_uint8(generate(torch.from_numpy(drawings).permute(0, 3, 1, 2).float().div(127.5).sub(1)))
                columns.append([paste_into_photo(avatar, face, target, height) if config.paste_back
                                else fit_height(face, height) for face, target in zip(faces, targets)])
            for i, (frame, _, found) in enumerate(batch):
                faceless += not found
                panels = [column[i] for column in columns]
                if labels:
                    panels = [label(p, text) for p, text in zip(panels, labels)]
                if config.side_by_side and not labels:
                    panels.insert(0, fit_height(avatars[0].source_crop, height))
                if show_driver:
                    panels.insert(0, label(fit_height(frame, height), "driver"))
                sink.write(stamp_synthetic(np.concatenate(panels, axis=1), config.mark_position))
                written += 1
            if progress:
                progress(min(1.0, written / max(total, 1)), "rendering")
        if written == 0 or faceless == written:
            raise InputError("no face was found in any frame of the driving video")
    return RenderResult(Path(out_path), written, info.fps, width, height, info.has_audio, faceless,
                        time.monotonic() - began)


def _batched(items: Iterator, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
