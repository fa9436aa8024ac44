"""Every kind of file a visitor may hand over, made inside the tests, through the pipeline and through
the app: each ends in a result or an :class:`InputError` whose message says what to do, never a
traceback or an "internal error". The tables below are the README's table of bad inputs.

Also: the limits a deployment sets through environment variables, the GPU out-of-memory fallback
(simulated on the CPU), and several visitors at once, each getting their own person.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import cv2
import gradio as gr
import imageio_ffmpeg
import numpy as np
import pytest
import torch
from app_support import MAX_VIDEO_SECONDS, PERSON, RecordingProgress, build_tiny_app, visitor
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from skimage import data

from talking_head.app_logic import AppSettings, TalkingHeadApp
from talking_head.avatar import Avatar
from talking_head.config import ModelConfig
from talking_head.errors import InputError
from talking_head.media import MAX_PHOTO_SIDE, VideoInfo, VideoSink, iter_video_frames, probe_video
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import BatchGenerator, RenderConfig, RenderResult, render_driven_video

pytestmark = pytest.mark.slow  # about a minute in all on a 2-core CPU

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
REFUSED = "Please check your input"  # the title of every InputError the app shows (not "Internal error")
#: Faceless driver frames in the "no face in some frames" video: the first five and four in the middle.
FACELESS = [*range(5), *range(12, 16)]


def ffmpeg(*args: object) -> None:
    subprocess.run([FFMPEG, "-y", "-nostdin", "-loglevel", "error", *map(str, args)], check=True)


@dataclass(frozen=True)
class Sources:
    """What the inputs are made from: the public-domain astronaut, a faceless photo, the test driver."""

    astronaut: np.ndarray  # (512, 512, 3)
    coffee: np.ndarray
    driver: Path  # 30 frames, 25 fps, 160 px, with sound
    driver_frames: list[np.ndarray]
    short_driver: Path  # its first 8 frames: what the app is driven with in the photo cases


@pytest.fixture(scope="module")
def sources(driver_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Sources:
    frames = list(iter_video_frames(driver_video))
    short = write_video(tmp_path_factory.mktemp("short") / "short.mp4", frames[:8])
    return Sources(data.astronaut(), data.coffee(), driver_video, frames, short)


@pytest.fixture(scope="module")
def tiny_app(tmp_path_factory: pytest.TempPathFactory) -> TalkingHeadApp:
    """Like test_app's, serving four requests at once (test_app's ``server`` fixture serves this one)."""
    return build_tiny_app(tmp_path_factory, concurrency=4)


@pytest.fixture(scope="module")
def pipe(tiny_app: TalkingHeadApp) -> TalkingHeadPipeline:
    return tiny_app.pipeline


@pytest.fixture(scope="module")
def avatar(pipe: TalkingHeadPipeline, synthetic_photos: list[Path]) -> Avatar:
    return pipe.personalize(synthetic_photos[:1], steps=0)


@pytest.fixture(scope="module")
def astronaut_landmarks(pipe: TalkingHeadPipeline, sources: Sources) -> np.ndarray:
    """Where the astronaut's face lies in its crop (crop pixels), from the plain RGB array."""
    return pipe.prepare_shots([sources.astronaut]).landmarks[0]


# ---------------------------------------------------------------------------------------------------
# Making the inputs
# ---------------------------------------------------------------------------------------------------

def write_video(path: Path, frames: list[np.ndarray], audio_from: Path | None = None) -> Path:
    height, width = frames[0].shape[:2]
    with VideoSink(path, width, height, 25.0, audio_from=audio_from) as sink:
        for frame in frames:
            sink.write(frame)
    return path


def containing(content: bytes) -> Callable[[Path, Sources], Path]:
    def make(path: Path, s: Sources) -> Path:
        path.write_bytes(content)
        return path
    return make


def looped(source: Path, path: Path, times: int = 4) -> Path:
    ffmpeg("-stream_loop", times - 1, "-i", source, "-c", "copy", path)
    return path


def truncated(source: Path, path: Path, fraction: float | None = None, size: int | None = None) -> Path:
    content = source.read_bytes()
    path.write_bytes(content[:size if size is not None else int(len(content) * fraction)])
    return path


def fifty_megapixels(path: Path, s: Sources) -> Path:
    """8200 x 6100: the astronaut scaled up 12x on a grey canvas."""
    canvas = np.full((6100, 8200, 3), 128, dtype=np.uint8)
    canvas[:, 1050:7150] = cv2.resize(s.astronaut, (6100, 6100), interpolation=cv2.INTER_LINEAR)
    Image.fromarray(canvas).save(path, quality=85)
    return path


def exif_rotated(path: Path, s: Sources) -> Path:
    """Stored turned 90° anticlockwise, with EXIF Orientation 6 telling viewers to turn it back."""
    image = Image.fromarray(np.ascontiguousarray(np.rot90(s.astronaut)))
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(path, exif=exif)
    return path


def astronaut(s: Sources) -> Image.Image:
    return Image.fromarray(s.astronaut)


def saved(picture: Callable[[Sources], Image.Image], format: str | None = None) -> Callable[[Path, Sources], Path]:
    def make(path: Path, s: Sources) -> Path:
        picture(s).save(path, format)
        return path
    return make


def sixteen_bit(gray: bool) -> Callable[[Path, Sources], Path]:
    def make(path: Path, s: Sources) -> Path:
        pixels = cv2.cvtColor(s.astronaut, cv2.COLOR_RGB2GRAY) if gray else s.astronaut[..., ::-1]
        cv2.imwrite(str(path), pixels.astype(np.uint16) * 257)  # the full 0-65535 range
        return path
    return make


def sound_only(path: Path, s: Sources) -> Path:
    ffmpeg("-i", s.driver, "-vn", "-c", "copy", path)
    return path


def short_sound(path: Path, s: Sources) -> Path:
    """The driver with its sound track cut to its first 0.4 s (of 1.2 s of video)."""
    ffmpeg("-i", s.driver, "-af", "atrim=0:0.4", "-c:v", "copy", "-c:a", "aac", path)
    return path


def every_frame_kept(result: RenderResult, driver: VideoInfo) -> bool:
    return result.has_audio and probe_video(result.path).num_frames == result.num_frames == driver.num_frames


def some_faceless_frames(path: Path, s: Sources) -> Path:
    coffee = cv2.resize(s.coffee, s.driver_frames[0].shape[1::-1])
    frames = [coffee if i in FACELESS else frame for i, frame in enumerate(s.driver_frames)]
    return write_video(path, frames, audio_from=s.driver)


def variable_frame_rate(source: Path, path: Path) -> Path:
    """Three frames of every ten kept at their own times: gaps of 40 and 320 ms, as a phone under load
    writes them (the stream's nominal rate stays 25 fps; its average is about 10)."""
    ffmpeg("-i", source, "-vf", r"select=lt(mod(n\,10)\,3)", "-fps_mode", "vfr", "-an", path)
    return path


def phone_portrait(path: Path, s: Sources) -> Path:
    """A landscape 160x128 clip stored sideways (128x160), with a display matrix that turns it upright."""
    sideways = path.with_name("sideways.mp4")
    ffmpeg("-i", s.driver, "-vf", "crop=160:128,transpose=1", "-c:a", "copy", sideways)
    ffmpeg("-display_rotation", 90, "-i", sideways, "-c", "copy", path)
    return path


@dataclass(frozen=True)
class Case:
    name: str  # the row of the README's table
    file: str
    make: Callable[[Path, Sources], Path]
    error: str | None = None  # what the InputError says (a regex); None: a result is expected
    check: Callable[[RenderResult, VideoInfo], bool] = lambda result, driver: True  # for videos
    note: str = ""  # what the app's notes must say about the result


PHOTOS = [
    Case("0-byte file", "empty.jpg", containing(b""), "'empty.jpg' is empty"),
    Case("text file named .jpg", "notes.jpg", containing(b"not an image"),
         "'notes.jpg' could not be read as an image: it is not an image file"),
    Case("truncated JPEG (first half)", "cut.jpg",
         lambda p, s: truncated(saved(astronaut)(p.with_name("whole.jpg"), s), p, fraction=0.5),
         r"'cut.jpg' could not be read as an image \(image file is truncated"),
    Case("1x1 image", "dot.png", saved(lambda s: Image.new("RGB", (1, 1), (200, 150, 120))),
         "dot.png: no face found"),
    Case("photo without a face", "coffee.jpg", saved(lambda s: Image.fromarray(s.coffee)),
         "coffee.jpg: no face found"),
    Case("50-megapixel JPEG (8200x6100)", "huge.jpg", fifty_megapixels),
    Case("grayscale PNG", "gray.png", saved(lambda s: astronaut(s).convert("L"))),
    Case("grayscale + alpha PNG", "gray_alpha.png", saved(lambda s: astronaut(s).convert("LA"))),
    Case("RGBA PNG", "rgba.png", saved(lambda s: astronaut(s).convert("RGBA"))),
    Case("palette (8-bit colour map) PNG", "palette.png", saved(lambda s: astronaut(s).convert("P"))),
    Case("CMYK JPEG", "cmyk.jpg", saved(lambda s: astronaut(s).convert("CMYK"))),
    Case("16-bit grayscale PNG", "gray16.png", sixteen_bit(gray=True)),
    Case("16-bit RGB PNG", "rgb16.png", sixteen_bit(gray=False)),
    Case("JPEG stored sideways, EXIF Orientation 6", "exif.jpg", exif_rotated),
]

VIDEOS = [
    Case("0-byte file", "empty.mp4", containing(b""), "'empty.mp4' is empty"),
    Case("text file named .mp4", "notes.mp4", containing(b"not a video"),
         "'notes.mp4' could not be read: it is not a video or it is damaged"),
    Case("JPEG photo named .mp4", "photo.mp4", saved(astronaut, "JPEG"),
         "'photo.mp4' could not be read: it is not a video or it is damaged"),
    Case("sound only (no video stream)", "sound.mp4", sound_only,
         "'sound.mp4' has no video stream"),
    Case("truncated MP4 (header only, first 2 kB)", "header.mp4", lambda p, s: truncated(s.driver, p, size=2000),
         "'header.mp4' could not be decoded: it is damaged or cut short"),
    Case("truncated MP4 (first half)", "half.mp4", lambda p, s: truncated(s.driver, p, fraction=0.5),
         check=lambda result, driver: 0 < result.num_frames < driver.num_frames),
    Case("no face in any frame", "coffee.mp4", lambda p, s: write_video(p, [cv2.resize(s.coffee, (160, 120))] * 10),
         "no face was found in any frame of the driving video"),
    Case("no face in 9 of 30 frames", "gaps.mp4", some_faceless_frames,
         check=lambda result, driver: result.frames_without_face == len(FACELESS) and result.num_frames == 30,
         note=f"{len(FACELESS)} driver frames had no face"),
    Case(f"longer than the cap ({MAX_VIDEO_SECONDS:g} s)", "long.mp4",
         lambda p, s: looped(s.driver, p),
         rf"is \d\.\d s long; (the limit is|this app accepts videos of at most) {MAX_VIDEO_SECONDS:g} s"),
    Case("variable frame rate (gaps of 40 and 320 ms)", "vfr.mp4", lambda p, s: variable_frame_rate(s.driver, p),
         check=lambda result, driver: abs(result.num_frames / result.fps - driver.duration) <= 1.5 / driver.fps),
    Case("no sound track", "silent.mp4", lambda p, s: write_video(p, s.driver_frames),
         check=lambda result, driver: not result.has_audio and not probe_video(result.path).has_audio,
         note="the driving video has no sound track"),
    Case("sound track shorter than the video", "short_sound.mp4", short_sound, check=every_frame_kept),
    Case("portrait phone video (stored sideways + rotation tag)", "phone.mp4", phone_portrait,
         check=lambda result, driver: result.frames_without_face == 0 and (driver.width, driver.height) == (160, 128)),
]


def refused_by_app(app_call: Callable[[], object], error: str) -> None:
    with pytest.raises(gr.Error, match=error) as refused:
        app_call()
    assert refused.value.title == REFUSED and "Traceback" not in refused.value.message


# ---------------------------------------------------------------------------------------------------
# The tables
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", PHOTOS, ids=[c.file for c in PHOTOS])
def test_photo_ends_in_a_result_or_a_clear_refusal(case: Case, pipe: TalkingHeadPipeline, tiny_app: TalkingHeadApp,
                                                  sources: Sources, astronaut_landmarks: np.ndarray,
                                                  tmp_path: Path) -> None:
    photo = case.make(tmp_path / case.file, sources)
    generate = partial(tiny_app.generate, [str(photo)], str(sources.short_driver), 0, output_size=128,
                       progress=RecordingProgress())
    if case.error:
        with pytest.raises(InputError, match=case.error):
            pipe.prepare_shots([photo])
        refused_by_app(generate, case.error)
        return
    began = time.monotonic()
    shots = pipe.prepare_shots([photo])
    assert time.monotonic() - began < 10  # a 50-megapixel photo is decoded at reduced size, not in full
    assert max(shots.photo.shape[:2]) <= MAX_PHOTO_SIDE
    # The face is found upright and where it is in the plain RGB astronaut (crop pixels, 32-px crop).
    assert np.abs(shots.landmarks[0] - astronaut_landmarks).mean() < 0.5
    overlays, video, _, _ = generate()
    assert [name for _, name in overlays] == [case.file]
    assert probe_video(video).num_frames == 8


@pytest.mark.parametrize("case", VIDEOS, ids=[c.file for c in VIDEOS])
def test_driving_video_ends_in_a_result_or_a_clear_refusal(case: Case, pipe: TalkingHeadPipeline, avatar: Avatar,
                                                           tiny_app: TalkingHeadApp, sources: Sources,
                                                           synthetic_photos: list[Path], tmp_path: Path) -> None:
    driver = case.make(tmp_path / case.file, sources)
    # The side-by-side layout also draws the driver's own frames, which must fit the probed size.
    config = RenderConfig(output_size=64, side_by_side=True, max_seconds=MAX_VIDEO_SECONDS)
    generate = partial(tiny_app.generate, [str(synthetic_photos[0])], str(driver), 0, side_by_side=True,
                       output_size=128, progress=RecordingProgress())
    if case.error:
        with pytest.raises(InputError, match=case.error):
            pipe.animate(avatar, driver, tmp_path / "out.mp4", config)
        assert not list(tmp_path.glob("out*"))  # nothing half-written is left behind
        refused_by_app(generate, case.error)
        return
    result = pipe.animate(avatar, driver, tmp_path / "out.mp4", config)
    assert case.check(result, probe_video(driver))
    assert probe_video(result.path).height == 64
    _, video, _, notes = generate()
    assert probe_video(video).height == 128 and case.note in notes


def test_a_video_over_the_cap_is_trimmed_when_asked(pipe: TalkingHeadPipeline, avatar: Avatar, sources: Sources,
                                                    tmp_path: Path) -> None:
    long = looped(sources.driver, tmp_path / "long.mp4")
    fps = probe_video(long).fps
    result = pipe.animate(avatar, long, tmp_path / "out.mp4", RenderConfig(output_size=64, max_seconds=2, trim=True))
    assert result.num_frames == int(2 * fps)
    assert probe_video(result.path).duration == pytest.approx(2.0, abs=0.1)  # the sound is trimmed too


def test_variable_frame_rate_frames_keep_their_times(sources: Sources, tmp_path: Path) -> None:
    """Frame i of a 25 fps clip is grey level 8i; three of every ten are kept at their own times. Read
    back at the average rate, the last frames must come from the clip's end (ffmpeg's default repeats
    frames at the nominal 25 fps, and a reader stopping after duration x average fps frames ended
    a third of the way in, its motion running slow against the sound)."""
    ramp = write_video(tmp_path / "ramp.mp4", [np.full((64, 64, 3), 8 * i, np.uint8) for i in range(30)])
    info = probe_video(variable_frame_rate(ramp, tmp_path / "vfr.mp4"))
    levels = [round(frame.mean() / 8) for frame in iter_video_frames(tmp_path / "vfr.mp4")]
    assert abs(len(levels) - info.duration * info.fps) <= 1
    assert levels == sorted(levels) and levels[0] <= 2 and levels[-1] >= 20


def test_a_driver_without_faces_shows_the_photo_pose_until_the_first_face(pipe: TalkingHeadPipeline, avatar: Avatar,
                                                                         sources: Sources, tmp_path: Path) -> None:
    gaps = some_faceless_frames(tmp_path / "gaps.mp4", sources)
    result = pipe.animate(avatar, gaps, tmp_path / "out.mp4", RenderConfig(output_size=64, smooth=False))
    frames = list(iter_video_frames(result.path))
    # Frames 0-4 (no face yet) all show the photo's own pose; 12-15 repeat frame 11's face.
    for i in (1, 2, 3, 4):
        assert np.abs(frames[i].astype(int) - frames[0]).mean() < 2
    for i in (12, 13, 14, 15):
        assert np.abs(frames[i].astype(int) - frames[11]).mean() < 2
    assert np.abs(frames[11].astype(int) - frames[0]).mean() > 10  # the face did move in between


def test_bad_video_uploads_reach_api_callers_as_their_message(server: str, sources: Sources, tmp_path: Path) -> None:
    client = visitor(server, tmp_path)
    for case in (c for c in VIDEOS if c.file in ("notes.mp4", "header.mp4", "coffee.mp4")):
        driver = case.make(tmp_path / case.file, sources)
        with pytest.raises(AppError, match=case.error) as refused:
            client.predict([handle_file(PERSON[0])], handle_file(driver), 0, api_name="/generate")
        assert "Traceback" not in str(refused.value)


# ---------------------------------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------------------------------

def test_app_limits_are_set_by_their_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"TALKING_HEAD_MAX_STEPS": "9", "TALKING_HEAD_FILE_TTL": "60", "TALKING_HEAD_QUEUE_SIZE": "3",
                        "TALKING_HEAD_CONCURRENCY": "2"}.items():
        monkeypatch.setenv(name, value)
    settings = AppSettings.from_env()
    assert (settings.max_steps, settings.file_ttl_seconds, settings.queue_size, settings.concurrency) == (9, 60, 3, 2)


def test_pipeline_limits_are_set_by_their_environment_variables() -> None:
    """Read when the modules are imported (they are class and module defaults), so in a fresh process."""
    limits = {"TALKING_HEAD_MAX_SHOTS": "2", "TALKING_HEAD_MAX_VIDEO_SECONDS": "7.5",
              "TALKING_HEAD_MAX_OUTPUT_SIZE": "200"}
    code = """if True:
        import json
        from talking_head.errors import InputError
        from talking_head.pipeline import TalkingHeadPipeline
        from talking_head.render import RenderConfig
        refusals = []
        for check in (lambda: TalkingHeadPipeline.prepare_shots(None, ["a.jpg"] * 3),
                      lambda: RenderConfig(output_size=256)):
            try:
                check()
            except (InputError, ValueError) as error:
                refusals.append(str(error))
        defaults = RenderConfig()
        print(json.dumps({"refusals": refusals, "defaults": [defaults.max_seconds, defaults.output_size]}))
    """
    child = subprocess.run([sys.executable, "-c", code], env={**os.environ, **limits}, capture_output=True, text=True,
                           check=True)
    found = json.loads(child.stdout.splitlines()[-1])
    assert found["refusals"] == ["3 photos given; at most 2 can be used",
                                 "output_size must be in [32, 200] and batch_size >= 1, got 256, 8"]
    assert found["defaults"] == [7.5, 200]  # the default height follows a cap below it


class OutOfMemoryAbove:
    """A generator on a small GPU: batches of more than ``limit`` frames run out of memory."""

    def __init__(self, generator: torch.nn.Module, limit: int) -> None:
        self.generator, self.limit, self.batches = generator, limit, []

    @property
    def config(self) -> ModelConfig:
        return self.generator.config

    def generate(self, drawings: torch.Tensor, warped: torch.Tensor | None = None) -> torch.Tensor:
        self.batches.append(len(drawings))
        if len(drawings) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.generator.generate(drawings, warped)


def test_out_of_gpu_memory_halves_the_batch_and_renders_the_same_video(pipe: TalkingHeadPipeline, avatar: Avatar,
                                                                      sources: Sources, tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    small_gpu = OutOfMemoryAbove(avatar.generator, limit=2)
    config = RenderConfig(output_size=64, batch_size=8)
    plenty = render_driven_video([avatar], sources.driver, tmp_path / "plenty.mp4", pipe.detector, config)
    with caplog.at_level("WARNING"):
        squeezed = render_driven_video([replace(avatar, generator=small_gpu)], sources.driver, tmp_path / "small.mp4",
                                       pipe.detector, config)
    # 8 and 4 fail once each; then the rest of the 30 frames in batches of 2 (the halving is remembered).
    assert small_gpu.batches == [8, 4] + [2] * 15
    assert [r.getMessage() for r in caplog.records] == [f"GPU out of memory: rendering in batches of {n}"
                                                       for n in (4, 2)]
    assert squeezed.num_frames == plenty.num_frames == 30
    for a, b in zip(iter_video_frames(plenty.path), iter_video_frames(squeezed.path), strict=True):
        np.testing.assert_array_equal(a, b)


def test_out_of_memory_on_single_frames_is_not_swallowed(avatar: Avatar) -> None:
    hopeless = BatchGenerator(replace(avatar, generator=OutOfMemoryAbove(avatar.generator, limit=0)), batch_size=4)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        hopeless(torch.zeros(3, 3, 32, 32))
    assert hopeless.batch_size == 1


# ---------------------------------------------------------------------------------------------------
# Several visitors at once
# ---------------------------------------------------------------------------------------------------

def test_four_visitors_at_once_each_get_their_own_photos_and_folders_are_swept(
        server: str, tiny_app: TalkingHeadApp, sources: Sources, synthetic_photos: list[Path],
        tmp_path: Path) -> None:
    astronaut = tmp_path / "astronaut.png"
    Image.fromarray(sources.astronaut).save(astronaut)
    requests = {"astronaut": [astronaut], "person 1": PERSON[:1], "person 2 and 3": PERSON[1:],
                "synthetic": synthetic_photos}
    before = set(tiny_app.folders.root.iterdir())

    def visit(name: str) -> tuple[Avatar, str]:
        client = visitor(server, tmp_path / name)
        _, video, avatar_file, _ = client.predict([handle_file(p) for p in requests[name]],
                                                  handle_file(sources.short_driver), 1, api_name="/generate")
        return Avatar.load(avatar_file), video

    with ThreadPoolExecutor(len(requests)) as pool:
        results = dict(zip(requests, pool.map(visit, requests)))
    for name, photos in requests.items():
        avatar, video = results[name]
        np.testing.assert_array_equal(avatar.source_crop, tiny_app.pipeline.prepare_shots(photos).crops[0])
        assert avatar.info["k"] == len(photos) and probe_video(video).num_frames == 8
    folders = set(tiny_app.folders.root.iterdir()) - before
    assert len(folders) == len(requests)  # one private folder per request ...
    assert all(sorted(p.name for p in f.iterdir()) == ["avatar.safetensors", "result.mp4"] for f in folders)
    an_hour_ago = time.time() - 3600
    for folder in folders:
        os.utime(folder, (an_hour_ago, an_hour_ago))
    tiny_app.folders.sweep()  # ... deleted once older than the TTL (on every new request)
    assert not folders & set(tiny_app.folders.root.iterdir())
