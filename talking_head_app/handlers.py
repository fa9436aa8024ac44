"""What the Gradio app does when a visitor presses a button, kept apart from the layout in ``app.py``.

Each public method of :class:`TalkingHeadApp` is one UI event and one named API endpoint. It checks
the inputs on the CPU first (cheap, and a ZeroGPU slot is never taken for a file that will be
refused), then runs the model inside ``spaces.GPU`` (a GPU borrowed per call on a ZeroGPU Space, a
no-op anywhere else), writing into a folder of the request's own. Errors become messages:

- :class:`~talking_head.errors.InputError` (no face, unreadable file, video too long, ...) becomes a
  ``gr.Error`` carrying its message as it is: the visitor can act on it;
- anything else becomes a generic ``gr.Error`` with a short reference; the traceback goes to the log
  under that reference, never to the visitor.
"""

from __future__ import annotations

import functools
import html
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import gradio as gr
import numpy as np
import spaces
import spaces.config

from talking_head.avatar import Avatar
from talking_head.clip_shots import ClipShotsConfig
from talking_head.config import ks_text
from talking_head.device import describe_rendering, pick_device
from talking_head.errors import InputError
from talking_head.evaluate_clip import evaluate_clips
from talking_head.evaluate_clip_report import results_table
from talking_head.face_render import GENERATOR_BY_DEFAULT, unused_finetuning
from talking_head.finetune import FinetuneConfig
from talking_head.markdown_text import escape_markdown
from talking_head.pipeline import Comparison, Shots, TalkingHeadPipeline
from talking_head.render import DEFAULT_OUTPUT_SIZE, Progress, RenderConfig, RenderResult
from talking_head_app.clip_input import (
    ClipComparison,
    check_clip_to_compare,
    chosen_shots,
    clip_path,
    plan_clip_comparison,
    shot_captions,
)
from talking_head_app.jobs import JobCancelled, check_stop

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

#: The most GPU time one ZeroGPU call may ask for. ZeroGPU refuses a call that reserves more than the
#: visitor's per-call maximum (undocumented; a few minutes, lower for anonymous visitors); 120 s fits
#: every account, so jobs estimated above it are refused up front with a message saying what to cut.
ZERO_GPU_MAX_SECONDS = 120
#: GPU-time estimate for the bundled ``small`` model on a ZeroGPU slice: fixed cost (worker start, copies,
#: mp4 encoding), per fine-tuning step, per driver frame (landmark detection on the CPU, drawing,
#: encoding) and per generated face. Deliberately generous guesses, not measurements: too little
#: reserved time aborts the call, too much only lowers the visitor's place in ZeroGPU's queue.
GPU_SECONDS_FIXED, GPU_SECONDS_PER_STEP, GPU_SECONDS_PER_FRAME, GPU_SECONDS_PER_FACE = 10.0, 0.15, 0.03, 0.01
#: Side of the landmark overlays shown for the uploaded photos.
OVERLAY_SIDE = 256
#: The output height that leaves it to the library: ``DEFAULT_OUTPUT_SIZE``, or pasted back the photo's own
#: resolution (``render.output_height``); the UI's default.
AUTO_OUTPUT_SIZE = "auto"
#: The face picker: thumbnails this many pixels a side, at most this many shown (a crowd is not a portrait), and
#: the largest face number accepted.
FACE_THUMBNAIL_SIDE, MAX_FACES_SHOWN, MAX_FACE_NUMBER = 128, 12, 100
#: An avatar's info is the text of whoever shared it: the notes show at most this many of its notes, each
#: cut to this many characters, as plain text (no links, pictures or markup).
MAX_SHOWN_NOTES = 8
#: The largest seed accepted (numpy's and torch's seeds are unsigned 32-bit).
MAX_SEED = 2**32 - 1
#: An error message quotes at most this many characters of what was sent (a 2 MB field is not echoed back).
MAX_QUOTED_CHARS = 100
#: Longer K-value texts are refused unread ("1, 8, 32" is 8 characters; four K values fit in far fewer).
MAX_KS_TEXT = 200


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class AppSettings:
    """The app's own limits and serving options; :meth:`from_env` reads the Space's variables. What the
    pipeline accepts (photos, driver length, output size) is its :class:`~talking_head.limits.Limits`."""

    max_steps: int = 100  # env TALKING_HEAD_MAX_STEPS: the steps slider's maximum
    max_compare_ks: int = 4  # how many K values one comparison may ask for
    file_ttl_seconds: int = 3600  # env TALKING_HEAD_FILE_TTL: uploads and results are deleted after this
    #: env TALKING_HEAD_MAX_UPLOAD_MB: Gradio refuses larger uploads before storing them (a 60 s phone video
    #: at 1080p is about 130 MB, an avatar of the paper's size about 170 MB)
    max_upload_mb: int = 200
    queue_size: int = 16  # env TALKING_HEAD_QUEUE_SIZE: visitors waiting beyond this are turned away
    concurrency: int = 1  # env TALKING_HEAD_CONCURRENCY: jobs run at once, whichever their button
    gpu_seconds_cap: float | None = None  # ZeroGPU: ZERO_GPU_MAX_SECONDS; None: no GPU-time limit

    @classmethod
    def from_env(cls) -> AppSettings:
        """The defaults suit a ZeroGPU Space or a 2-core CPU Space: one job at a time (a job already uses
        every core, or the one GPU slice), at most 16 waiting (about a quarter of an hour of work)."""
        return cls(max_steps=_env_int("TALKING_HEAD_MAX_STEPS", cls.max_steps),
                   file_ttl_seconds=_env_int("TALKING_HEAD_FILE_TTL", cls.file_ttl_seconds),
                   max_upload_mb=_env_int("TALKING_HEAD_MAX_UPLOAD_MB", cls.max_upload_mb),
                   queue_size=_env_int("TALKING_HEAD_QUEUE_SIZE", cls.queue_size),
                   concurrency=_env_int("TALKING_HEAD_CONCURRENCY", cls.concurrency),
                   gpu_seconds_cap=ZERO_GPU_MAX_SECONDS if spaces.config.Config.zero_gpu else None)

    @property
    def default_steps(self) -> int:
        return min(FinetuneConfig().steps, self.max_steps)

    @property
    def sweep_seconds(self) -> int:
        """How often request folders are swept: a quarter of their TTL (at least a minute)."""
        return max(60, self.file_ttl_seconds // 4)


# ---------------------------------------------------------------------------------------------------
# Errors as visitors see them
# ---------------------------------------------------------------------------------------------------

def visitor_errors(handler: Callable[P, R]) -> Callable[P, R]:
    """Run ``handler``, turning every exception into a ``gr.Error`` a visitor may see (see module doc)."""

    @functools.wraps(handler)  # keeps the signature: Gradio finds the ``gr.Progress`` parameter through it
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except JobCancelled:
            raise gr.Error("The job was cancelled.", title="Cancelled", print_exception=False) from None
        except InputError as error:
            raise gr.Error(str(error), title="Please check your input", print_exception=False) from None
        except Exception:
            reference = uuid.uuid4().hex[:8]
            logger.exception("request failed (reference %s)", reference)
            raise gr.Error(f"Something went wrong on our side (reference {reference}). Please try again; if it "
                           f"keeps failing, report the reference.", title="Internal error",
                           print_exception=False) from None

    return run


# ---------------------------------------------------------------------------------------------------
# Per-request folders
# ---------------------------------------------------------------------------------------------------

class RequestFolders:
    """A fresh folder per request under ``root``, so two visitors never share a file.

    Gradio copies every returned file into its own cache (which ``delete_cache`` empties on a
    schedule), so a working folder is only needed until its response is sent; folders older than
    ``ttl_seconds`` are deleted whenever a new one is made, and by :meth:`sweep_every`'s timer when no
    request comes (a visitor's photo inside an avatar must not outlive the promised hour).
    """

    def __init__(self, root: str | Path, ttl_seconds: float) -> None:
        self.root, self.ttl_seconds = Path(root), ttl_seconds
        self.root.mkdir(parents=True, exist_ok=True)

    def new(self) -> Path:
        self.sweep()
        return Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=self.root))

    @contextmanager
    def job(self) -> Iterator[Path]:
        """A new folder for one job, removed at once when the job fails or is cancelled (what it wrote
        was half done, and nobody will receive it)."""
        folder = self.new()
        try:
            yield folder
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def sweep(self) -> None:
        cutoff = time.time() - self.ttl_seconds
        for folder in self.root.iterdir():
            try:
                if folder.is_dir() and folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
            except FileNotFoundError:  # another request swept it first
                continue

    def sweep_every(self, seconds: float) -> threading.Event:
        """Sweep in a daemon thread every ``seconds`` until the returned event is set."""
        return every(seconds, self.sweep, "sweep-request-folders")


def every(seconds: float, action: Callable[[], object], name: str) -> threading.Event:
    """Run ``action`` in a daemon thread every ``seconds`` until the returned event is set; a failure goes
    to the log and the next round tries again (the root of the folders gone or unreadable, say)."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(seconds):
            try:
                action()
            except Exception:
                logger.exception("%s failed", name)

    threading.Thread(target=run, name=name, daemon=True).start()
    return stop


# ---------------------------------------------------------------------------------------------------
# Jobs handed to the GPU
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    """What one request asks of the GPU. Plain data: ZeroGPU pickles it to its GPU worker process."""

    driver: str
    render: RenderConfig
    frames: int  # driver frames to render
    steps: int = 0  # fine-tuning steps per avatar
    avatars: int = 1  # avatars fine-tuned and rendered (one column each)
    seed: int = 0

    @property
    def gpu_seconds(self) -> int:
        """Seconds to reserve on ZeroGPU (``spaces.GPU(duration=...)``)."""
        return int(np.ceil(GPU_SECONDS_FIXED + self.avatars * self.steps * GPU_SECONDS_PER_STEP
                           + self.frames * (GPU_SECONDS_PER_FRAME + self.avatars * GPU_SECONDS_PER_FACE)))


def _reserved_seconds(job: Job, *_: Any, **__: Any) -> int:
    return min(job.gpu_seconds, ZERO_GPU_MAX_SECONDS)


def gradio_progress(progress: Callable[..., Any]) -> Progress:
    """The pipeline's ``progress(fraction, text)`` shown on Gradio's progress bar. The pipeline reports after
    every photo, fine-tuning step and rendered batch: there a cancelled job stops (:func:`check_stop`)."""

    def report(fraction: float, text: str) -> None:
        check_stop()
        progress(fraction, desc=text)

    return report


# ---------------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------------

class TalkingHeadApp:
    """The handlers behind the UI, around one pipeline loaded once per process."""

    def __init__(self, pipeline: TalkingHeadPipeline, settings: AppSettings | None = None,
                 work_root: str | Path | None = None) -> None:
        self.pipeline = pipeline
        self.settings = settings or AppSettings.from_env()
        self.folders = RequestFolders(work_root or Path(tempfile.gettempdir()) / "talking-head-app",
                                      self.settings.file_ttl_seconds)
        # Decorated per instance: the bound methods reach the pipeline in ZeroGPU's forked worker
        # without pickling the model; only their arguments travel.
        self._personalize_and_animate_on_gpu = spaces.GPU(duration=_reserved_seconds)(self._personalize_and_animate)
        self._animate_on_gpu = spaces.GPU(duration=_reserved_seconds)(self._animate)
        self._compare_on_gpu = spaces.GPU(duration=_reserved_seconds)(self._compare)
        self._compare_clip_on_gpu = spaces.GPU(duration=_reserved_seconds)(self._compare_clip)

    @classmethod
    def from_pretrained(cls, settings: AppSettings | None = None) -> TalkingHeadApp:
        """Weights resolved as the package does: ``TALKING_HEAD_REPO`` on the Hub, else ``checkpoints/``."""
        return cls(TalkingHeadPipeline.from_pretrained(), settings)

    @property
    def output_sizes(self) -> tuple[list[int], int]:
        """The output heights offered under the pipeline's limit, and the default (:func:`output_size_choices`)."""
        return output_size_choices(self.pipeline.limits.max_output_size)

    @property
    def output_height_choices(self) -> list[tuple[str, str | int]]:
        """The Animate tab's output heights: ``AUTO_OUTPUT_SIZE`` (the default, said in words), then the sizes."""
        auto = (f"auto: {DEFAULT_OUTPUT_SIZE}, or pasted back the photo's own (at most "
                f"{self.pipeline.limits.max_output_size})")
        return [(auto, AUTO_OUTPUT_SIZE), *((str(size), size) for size in self.output_sizes[0])]

    # -- UI events --------------------------------------------------------------------------------------
    @visitor_errors
    def generate(self, photos: Sequence[str] | None, driver: str | None, steps: float,
                 retarget: str = RenderConfig.retarget, paste_back: bool = RenderConfig.paste_back,
                 side_by_side: bool = RenderConfig.side_by_side,
                 output_size: float | str | None = RenderConfig.output_size,
                 mark_position: str = RenderConfig.mark_position, seed: float = 0,
                 generator: bool = RenderConfig.generator, clip: str | None = None, shots: float | None = None,
                 face: float = 1, progress: gr.Progress = gr.Progress()
                 ) -> tuple[list[tuple[np.ndarray, str]], str, str, str]:
        """Photos and/or a clip of yourself (``shots`` frames of it) + driving video -> (the shots with their
        landmarks, result mp4, avatar file, notes in markdown). ``face``: which face of a photo holding several,
        by size (1 = the largest; :meth:`find_faces` shows them numbered)."""
        clip = clip_path(clip)
        photos = self._photo_paths(photos, clip)
        job = self._job(driver, _render_config(retarget, paste_back, side_by_side, output_size, mark_position,
                                               generator), steps=self._steps(steps), seed=checked_seed(seed))
        face = whole_number(1 if face is None else face, "the face number", 1, MAX_FACE_NUMBER)
        began = time.monotonic()
        from_clip = chosen_shots(self.pipeline, clip, self._clip_shots(shots)) if clip else None
        shots_taken = self.pipeline.prepare_shots([*photos, from_clip] if from_clip else photos,
                                                 gradio_progress(progress), face=face)
        detect_seconds = time.monotonic() - began
        avatar_path, result, info = self._personalize_and_animate_on_gpu(job, shots_taken, progress)
        notes = _describe(result, info, job.render.generator,
                          [("finding faces in the photos", detect_seconds),
                           (f"personalising ({job.steps} fine-tuning steps)", info["seconds"])])
        unused = unused_finetuning(job.steps, job.render.generator, job.render.mouth)
        notes = f"**Note:** {unused} (*Advanced*).\n\n{notes}" if unused else notes
        overlays = self.pipeline.landmark_overlays(shots_taken, OVERLAY_SIDE)
        return list(zip(overlays, shot_captions(photos, from_clip))), str(result.path), str(avatar_path), notes

    @visitor_errors
    def find_faces(self, photos: Sequence[str] | str | None) -> list[tuple[np.ndarray, str]]:
        """The faces of each photo holding several, numbered by size as ``generate``'s ``face`` picks them: shown
        as soon as the photos arrive, before anything is rendered (a photo with one face shows none)."""
        shown: list[tuple[np.ndarray, str]] = []
        for path in self._photo_paths(photos) if photos else []:
            faces = self.pipeline.faces_in_photo(path, FACE_THUMBNAIL_SIDE)
            if len(faces) > 1:
                shown += [(face, f"{Path(path).name}: face {number}" + (" (the largest)" if number == 1 else ""))
                          for number, face in enumerate(faces, 1)]
        return shown[:MAX_FACES_SHOWN]

    @visitor_errors
    def preview_clip(self, clip: str | None, shots: float | None = None) -> tuple[list[tuple[np.ndarray, str]], str]:
        """A clip of yourself -> (the shots chosen from it with their landmarks, when each was and why it was taken;
        notes in markdown): shown as soon as the clip arrives, before anything is rendered."""
        clip = clip_path(clip)
        if clip is None:  # the clip was removed
            return [], ""
        from_clip = chosen_shots(self.pipeline, clip, self._clip_shots(shots))
        shots_taken = self.pipeline.prepare_shots([from_clip])
        overlays = self.pipeline.landmark_overlays(shots_taken, OVERLAY_SIDE)
        captions = shot_captions([], from_clip)
        taken = f"{from_clip.name}: {len(captions)} shots from {from_clip.frames} frames, each for a reason:"
        return list(zip(overlays, captions)), _bullets([taken, *captions, *from_clip.notes])

    @visitor_errors
    def animate_avatar(self, avatar_file: str | None, driver: str | None, retarget: str = RenderConfig.retarget,
                       paste_back: bool = RenderConfig.paste_back, side_by_side: bool = RenderConfig.side_by_side,
                       output_size: float | str | None = RenderConfig.output_size,
                       mark_position: str = RenderConfig.mark_position,
                       generator: bool = RenderConfig.generator,
                       progress: gr.Progress = gr.Progress()) -> tuple[str, str]:
        """A saved avatar + driving video -> (result mp4, notes): no fine-tuning."""
        if not avatar_file:
            raise InputError("upload an avatar file (.safetensors) saved by this app")
        job = self._job(driver, _render_config(retarget, paste_back, side_by_side, output_size, mark_position,
                                               generator))
        avatar = Avatar.load(avatar_file)  # checked here, before a GPU is taken for it
        result = self._animate_on_gpu(job, avatar, progress)
        return str(result.path), _describe(result, avatar.info, job.render.generator)

    @visitor_errors
    def compare(self, photos: Sequence[str] | None, driver: str | None, ks: str = ks_text(),
                steps: float = FinetuneConfig().steps, generator: bool = RenderConfig.generator, clip: str | None = None,
                face: float = 1, progress: gr.Progress = gr.Progress()) -> tuple[str, str]:
        """Photos (or one clip of yourself, see :meth:`_clip_comparison`) + driving video -> (mp4 with one labelled
        column per K, metrics table in markdown). ``face`` as in :meth:`generate`."""
        if clip_path(clip):
            return self._clip_comparison(photos, driver, ks, steps, generator, clip, progress)
        face = whole_number(1 if face is None else face, "the face number", 1, MAX_FACE_NUMBER)
        photos = self._photo_paths(photos)
        chosen = parse_ks(ks, self.settings.max_compare_ks, self.pipeline.limits.max_shots)
        columns = len({min(k, len(photos)) for k in chosen})  # K is capped at the number of photos
        job = self._job(driver, RenderConfig(output_size=self.output_sizes[1], generator=generator is True),
                        steps=self._steps(steps), avatars=columns)
        comparison = self._compare_on_gpu(job, photos, chosen, face, progress)
        return str(comparison.path), comparison.table

    def _clip_comparison(self, photos: Sequence[str] | None, driver: str | None, ks: str, steps: float,
                         generator: bool, clip: str, progress: Callable[..., Any]) -> tuple[str, str]:
        """*Compare shots* from one clip: each K's shots from its first half, one column each driven by ``driver``
        (none: the clip itself), measured on its second half's frames as the truth (``evaluate --clip``)."""
        if photos:
            raise InputError("compare from photos or from a clip, not both: the clip's own frames are what each K is "
                             "measured on")
        chosen = parse_ks(ks, self.settings.max_compare_ks, self.pipeline.limits.max_shots)
        render = RenderConfig(output_size=self.output_sizes[1], generator=generator is True)
        options, half = check_clip_to_compare(self.pipeline, clip, render.output_size)
        # Each K is personalised twice: once for its column, once by evaluate --clip's protocol.
        job = self._job(driver or clip, render, steps=self._steps(steps), avatars=2 * len(chosen))
        plan = plan_clip_comparison(self.pipeline, clip, chosen, options, half)
        comparison = self._compare_clip_on_gpu(job, plan, progress)
        return str(comparison.path), comparison.table

    # -- checks -----------------------------------------------------------------------------------------
    def _steps(self, steps: float) -> int:
        return whole_number(steps, "fine-tuning steps", 0, self.settings.max_steps)

    def _clip_shots(self, shots: float | None) -> int:
        """The shots a clip gives: the library's default when none is sent (ClipShotsConfig's, written once)."""
        return ClipShotsConfig().shots if shots is None else whole_number(shots, "shots from the clip", 1,
                                                                              self.pipeline.limits.max_shots)

    def _photo_paths(self, photos: Sequence[str] | str | None, clip: str | None = None) -> list[str]:
        """Gradio gives file paths (or file dicts from some clients); as many as the pipeline accepts, counting a
        clip beside them as one."""
        if isinstance(photos, str):
            photos = [photos]
        paths = [p["path"] if isinstance(p, dict) else str(p) for p in photos or []]
        if not paths and clip is None:
            raise InputError("upload at least one photo of a face, or a clip of yourself")
        self.pipeline.check_photos([*paths, clip] if clip else paths)
        return paths

    def _job(self, driver: str | None, render: RenderConfig, steps: int = 0, avatars: int = 1, seed: int = 0) -> Job:
        """Check the driving video (as the pipeline will render it) and the GPU-time budget of a request."""
        if not driver:
            raise InputError("upload or record a driving video (a face that talks or moves)")
        job = Job(str(driver), render, self.pipeline.check_driver(driver, render).frames, steps, avatars, seed)
        cap = self.settings.gpu_seconds_cap
        if cap is not None and job.gpu_seconds > cap:
            raise InputError(f"this request needs about {job.gpu_seconds} s of GPU time, more than the {cap:g} s one "
                             f"request may use here: choose fewer fine-tuning steps or a shorter driving video")
        return job

    # -- GPU work (inside spaces.GPU) -------------------------------------------------------------------
    def _personalize_and_animate(self, job: Job, shots: Shots, progress: Callable[..., Any]
                                 ) -> tuple[Path, RenderResult, dict[str, Any]]:
        with self.folders.job() as folder:
            avatar = self.pipeline.personalize(shots, job.steps, gradio_progress(progress), FinetuneConfig(seed=job.seed))
            avatar_path = avatar.save(folder / "avatar.safetensors")
            result = self.pipeline.animate(avatar, job.driver, folder / "result.mp4", job.render, gradio_progress(progress))
        return avatar_path, result, avatar.info

    def _animate(self, job: Job, avatar: Avatar, progress: Callable[..., Any]) -> RenderResult:
        with self.folders.job() as folder:
            return self.pipeline.animate(avatar, job.driver, folder / "result.mp4", job.render, gradio_progress(progress))

    def _compare(self, job: Job, photos: list[str], ks: list[int], face: int, progress: Callable[..., Any]
                 ) -> Comparison:
        with self.folders.job() as folder:
            return self.pipeline.compare(photos, job.driver, folder / "comparison.mp4", ks, job.steps, job.render,
                                         gradio_progress(progress), face=face)

    def _compare_clip(self, job: Job, plan: ClipComparison, progress: Callable[..., Any]) -> Comparison:
        """The columns from the plan's shots, then each K measured by ``evaluate --clip`` on the clip's second half
        (it takes the same shots: ``plan.options``); its table replaces the one measured on the other shots."""
        report = gradio_progress(progress)
        with self.folders.job() as folder:
            comparison = self.pipeline.compare([plan.shots], job.driver, folder / "comparison.mp4", plan.ks,
                                               job.steps, job.render, report)
            report(1.0, "measuring each K on the clip's second half")
            measured = evaluate_clips(self.pipeline, [Path(plan.clip)], tuple(plan.ks), (job.steps,),
                                      FinetuneConfig(), plan.options)
        return replace(comparison, table=clip_comparison_table(plan, measured.rows, measured.notes))


# ---------------------------------------------------------------------------------------------------
# Inputs and outputs
# ---------------------------------------------------------------------------------------------------

def whole_number(value: object, what: str, low: int, high: int) -> int:
    """An API caller's number (Gradio hands it on unchecked, see :func:`checked_by_the_app`) as an int in
    [low, high], or an InputError saying what was expected."""
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not (math.isfinite(number) and number == round(number) and low <= number <= high):
        raise InputError(f"{what} must be between {low} and {high} (a whole number), got {quoted(value)}")
    return int(number)


def quoted(value: object, limit: int = MAX_QUOTED_CHARS) -> str:
    """``value`` as an error message quotes it: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def checked_seed(seed: object) -> int:
    return whole_number(0 if seed is None else seed, "the seed", 0, MAX_SEED)


def checked_by_the_app(*components: gr.components.Component) -> None:
    """Hand these number inputs to the handlers as the caller sent them. Gradio's own check of a Slider or
    Number fails on a non-number from an API caller with its generic error before the handler runs;
    the handlers check them (:func:`whole_number`) and say what is wrong."""
    for component in components:
        component.preprocess = lambda payload: payload


def short_refusals(*components: gr.components.Component) -> None:
    """Let these inputs refuse an API caller's value of the wrong kind with a short message of the app's:
    Gradio's own checks answer a file input's wrong value with a generic error and a choice's with the
    whole value quoted back (megabytes, if that is what was sent). A file input's value is checked by its
    ``data_model`` before ``preprocess``, so both are wrapped."""
    for component in components:
        component.preprocess = _refusing(component, component.preprocess)
        model = getattr(component, "data_model", None)
        if model is not None:
            component.data_model = _refusing_model(component, model)


def _refusing_model(component: gr.components.Component, model: type) -> type:
    """``model`` (a pydantic model of Gradio's) under its own name and schema, so the API page is unchanged,
    whose validation refuses as :func:`_refusing` does."""
    check = _refusing(component, model.model_validate)

    def model_validate(cls: type, value: Any, *args: Any, **kwargs: Any) -> Any:
        return check(value, *args, **kwargs)

    return type(model.__name__, (model,), {"model_validate": classmethod(model_validate)})


def _refusing(component: gr.components.Component, accept: Callable[..., Any]) -> Callable[..., Any]:
    """``accept`` (a preprocess or a model's validation) raising a short ``gr.Error`` on what it refuses."""
    label = component.label or type(component).__name__

    def checked(payload: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return accept(payload, *args, **kwargs)
        except Exception:  # noqa: BLE001  Gradio's own refusal (gr.Error, pydantic's): replaced by a short one
            raise gr.Error(f"{label}: expected {_expected(component)}, got {quoted(payload)}",
                           title="Please check your input", print_exception=False) from None

    return checked


def _expected(component: gr.components.Component) -> str:
    """What ``component`` accepts, as an API caller must send it."""
    if isinstance(component, (gr.Dropdown, gr.Radio)):
        return "one of " + ", ".join(repr(value) for _, value in component.choices)
    if isinstance(component, gr.File) and component.file_count == "multiple":
        return "a list of files (gradio_client.handle_file(path) for each)"
    if isinstance(component, (gr.File, gr.Video, gr.Image)):
        return "a file (gradio_client.handle_file(path))"
    return "a value this input offers"


def _render_config(retarget: str, paste_back: bool, side_by_side: bool, output_size: float | str | None,
                   mark_position: str, generator: bool = GENERATOR_BY_DEFAULT) -> RenderConfig:
    """The render options as the UI (or an API caller) sends them; ``AUTO_OUTPUT_SIZE`` (or None) leaves the
    output's height to the library (``render.output_height``: with paste-back, the photo's own)."""
    try:
        height = None if output_size in (None, AUTO_OUTPUT_SIZE) else int(output_size)  # type: ignore[arg-type]
        return RenderConfig(retarget=retarget, paste_back=bool(paste_back), side_by_side=bool(side_by_side),
                            output_size=height, mark_position=mark_position, generator=generator is True)
    except (ValueError, TypeError) as error:  # only reachable through the API, the UI offers valid choices
        raise InputError(str(error)) from error


def output_size_choices(max_size: int, sizes: Sequence[int] = (128, 256, 512)) -> tuple[list[int], int]:
    """The output heights the UI offers under the server's cap (``TALKING_HEAD_MAX_OUTPUT_SIZE``) and the
    default: a visitor is never offered a size that would then be refused."""
    allowed = [s for s in sizes if s <= max_size] or [max_size]
    return allowed, min(allowed, key=lambda s: abs(s - DEFAULT_OUTPUT_SIZE))


def parse_ks(text: str | Sequence[int] | None, max_count: int, max_shots: int) -> list[int]:
    """"1, 8, 32" -> [1, 8, 32]: distinct shot counts between 1 and ``max_shots``, at most ``max_count``.
    Anything else an API caller sends (None, a number, megabytes of text) is refused with a short message."""
    if isinstance(text, str) and len(text) <= MAX_KS_TEXT:
        items = re.split(r"[,\s;]+", text.strip())
    elif isinstance(text, (list, tuple)) and len(text) <= max_count:
        items = [str(k) for k in text]
    else:
        items = ["not a K value"]
    try:
        ks = sorted({int(item) for item in items if item})
    except ValueError:
        raise InputError(f"K values must be whole numbers separated by commas, like '{ks_text()}'; got "
                         f"{quoted(text)}") from None
    if not ks or ks[0] < 1 or ks[-1] > max_shots or len(ks) > max_count:
        raise InputError(f"give 1 to {max_count} K values between 1 and {max_shots}, like '{ks_text()}'; "
                         f"got {quoted(text)}")
    return ks


def _bullets(notes: Sequence[str]) -> str:
    """Notes as a markdown list, each shown as plain text (a clip's name is the visitor's)."""
    return "\n".join(f"- {escape_markdown(note)}" for note in notes)


def clip_comparison_table(plan: ClipComparison, rows: list[dict[str, Any]], notes: Sequence[str]) -> str:
    """``evaluate --clip``'s table (warp, model and their difference per K) under a line saying what was measured."""
    targets = rows[0]["targets"] if rows else 0
    header = (f"Each K's shots from the first {plan.half} frames of {escape_markdown(plan.shots.name)}, measured on {targets} "
              f"frames of its second half as the truth (`evaluate --clip`'s self-reenactment; warp: the default, "
              f"model: with the learned generator; ↑ higher is better, ↓ lower).")
    return f"{header}\n\n{results_table(rows)}\n\n{_bullets([*plan.notes, *notes])}"


def _describe(result: RenderResult, info: dict[str, Any], generator: bool,
              stages: Sequence[tuple[str, float]] = ()) -> str:
    """Timings and notes for the visitor, as markdown: ``stages`` before rendering, then rendering. What
    comes from ``info`` (an uploaded avatar's, the sharer's text) is shown as plain text."""
    stages = [*stages, (f"rendering {result.num_frames} frames at {result.fps:g} fps", result.seconds)]
    shown = {key: escape_markdown(info.get(key, "?")) for key in ("k", "weights", "device")}
    header = f"**K = {shown['k']}**, weights: {shown['weights']}, device: {shown['device']}"
    lines = [header, "", "| stage | seconds |", "|---|---|", *(f"| {name} | {sec:.1f} |" for name, sec in stages)]
    notes = [escape_markdown(note) for note in info.get("notes", [])[:MAX_SHOWN_NOTES]]
    if result.frames_without_face:
        notes.append(f"{result.frames_without_face} driver frames had no face: the last face seen was repeated")
    if not result.has_audio:
        notes.append("the driving video has no sound track")
    notes.append(f"the generator ran in {describe_rendering(pick_device())}" if generator else
                 "the frames are the photo warped (the learned generator is off: Advanced)")
    return "\n".join(lines + [""] + [f"- {note}" for note in notes])
