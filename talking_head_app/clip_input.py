"""The app's side of a clip of yourself as the shots (docs/clip_shots.md).

The choosing is the library's (:func:`talking_head.clip_shots.choose_shots`, what ``--photos me.mp4`` runs) and
the measuring is ``evaluate --clip``'s (:func:`talking_head.evaluate_clip.evaluate_clips`); here only what the app
adds around them: the uploaded or recorded clip checked, a caption per shot (when it was and why it was taken),
and *Compare shots* from one clip planned so that the video's columns and the measured table use the same
shots: each K from the clip's first half, measured on its second half's frames as the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from talking_head.clip_shots import VIDEO_SUFFIXES, ClipShots, ClipShotsConfig, choose_shots, is_video
from talking_head.errors import InputError
from talking_head.evaluate_clip import ClipOptions, check_clip
from talking_head.media import probe_driver
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import RenderConfig


def clip_path(clip: str | None) -> str | None:
    """The uploaded or recorded clip's path (None when there is none), refused unless it is named as a video: the
    library tells a clip from a photo by its name (an API caller may send a photo here)."""
    if not clip:
        return None
    if not is_video(clip):
        raise InputError(f"{Path(clip).name!r} is not a video file: a clip of yourself is one of "
                         f"{', '.join(VIDEO_SUFFIXES)}")
    return str(clip)


def chosen_shots(pipeline: TalkingHeadPipeline, clip: str, shots: int, max_frames: int | None = None) -> ClipShots:
    """The ``shots`` frames of ``clip`` the library chooses (from its first ``max_frames`` frames when given)."""
    return choose_shots(clip, pipeline.detector, ClipShotsConfig(shots=shots), pipeline.limits, max_frames)


def shot_captions(photos: list[str], clip: ClipShots | None) -> list[str]:
    """A caption per shot, in ``prepare_shots``' order (the photos, then the clip's): a photo's name; a clip
    frame's time and why it was taken."""
    from_clip = [f"{clip.name} at {shot.time:.2f} s: {shot.reason}" for shot in clip.shots] if clip else []
    return [Path(photo).name for photo in photos] + from_clip


@dataclass(frozen=True)
class ClipComparison:
    """*Compare shots* from one clip: each K's shots (a prefix of ``shots``, the most telling first) come from
    the clip's first ``half`` frames, and ``options`` make ``evaluate_clips`` take the same ones."""

    clip: str
    shots: ClipShots
    ks: list[int]  # as asked, capped at the shots the first half gave
    half: int
    options: ClipOptions
    notes: list[str]


def check_clip_to_compare(pipeline: TalkingHeadPipeline, clip: str, output_size: int) -> tuple[ClipOptions, int]:
    """``evaluate --clip``'s options for ``clip`` and its first half's length, or an InputError saying why it cannot
    be compared from (too long, unreadable, a single frame). Cheap: it reads the container."""
    info = probe_driver(clip, pipeline.limits)
    longest = pipeline.limits.max_video_seconds
    if info.duration > longest + 1e-6:
        raise InputError(f"{Path(clip).name} is {info.duration:.1f} s long; a clip to compare from may be at most "
                         f"{longest:g} s (5 s are enough)")
    options = ClipOptions(clip=(clip,), output_size=output_size, worst=0, shot_choice="cover")
    driving = check_clip(Path(clip), RenderConfig(retarget=options.retarget, output_size=output_size), pipeline)
    return options, driving.frames // 2


def plan_clip_comparison(pipeline: TalkingHeadPipeline, clip: str, ks: list[int], options: ClipOptions, half: int
                         ) -> ClipComparison:
    """Choose the first ``half``'s shots for the largest K and cap the Ks at how many it gave (a short or still clip
    gives fewer than 32: the notes say so)."""
    shots = chosen_shots(pipeline, clip, max(ks), max_frames=half)
    available = len(shots.shots)
    capped = (f"{shots.name}: its first half ({half} frames) gave {available} usable shot{'s' * (available != 1)}, "
              f"so K is capped at {available}")
    notes = [capped] if max(ks) > available else []
    return ClipComparison(clip, shots, sorted({min(k, available) for k in ks}), half, options,
                          notes + [shots.describe(), *shots.notes])
