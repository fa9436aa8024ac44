"""Every kind of file a visitor may hand over, made inside the tests, through the pipeline and through
the app: each ends in a result or an :class:`InputError` whose message says what to do, never a
traceback or an "internal error". The tables below are the README's table of bad inputs.

Also: the limits a deployment sets through environment variables, the GPU out-of-memory fallback
(simulated on the CPU), several visitors at once, each getting their own person, what a visitor
crafting files and requests can cost the server (issue 15), and, last, the peak resident memory of
``python app.py`` sent all of it.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import cv2
import gradio as gr
import httpx
import imageio_ffmpeg
import numpy as np
import pytest
import torch
from app_support import (
    MAX_VIDEO_SECONDS,
    PERSON,
    RecordingProgress,
    build_tiny_app,
    free_port,
    load_app_module,
    peak_resident_bytes,
    visitor,
)
from avatar_files import config_with, rewritten, tensor_with
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from skimage import data

from talking_head.avatar import Avatar
from talking_head.errors import InputError
from talking_head.face_render import BatchGenerator
from talking_head.landmarks.detect import detect_face
from talking_head.limits import Limits
from talking_head.media import (
    MAX_PHOTO_SIDE,
    VideoInfo,
    VideoSink,
    iter_video_frames,
    load_photo,
    probe_driver,
    probe_video,
)
from talking_head.models import PersonalGenerator
from talking_head.pipeline import TalkingHeadPipeline, face_notes
from talking_head.render import RenderConfig, RenderResult, render_driven_video
from talking_head.markdown_text import MAX_SHOWN_CHARS
from talking_head_app.handlers import MAX_SHOWN_NOTES, AppSettings, RequestFolders, TalkingHeadApp

pytestmark = pytest.mark.slow  # about a minute in all on a 2-core CPU

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
REFUSED = "Please check your input"  # the title of every InputError the app shows (not "Internal error")
#: Faceless driver frames in the "no face in some frames" video: the first five and four in the middle.
FACELESS = [*range(5), *range(12, 16)]
#: The decoder's caps: the defaults, as no test here sets their variables.
MAX_DRIVER_FPS, MAX_DRIVER_SIDE = Limits().max_driver_fps, Limits().max_driver_side
#: The side of the oversized driver: twice the decoder's cap.
HUGE_SIDE = 2 * MAX_DRIVER_SIDE
#: Peak resident memory the app's process may reach through this module's inputs (issue 15).
MAX_RESIDENT_BYTES = 2 * 1024**3


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


def small_astronaut(size: tuple[int, int], canvas: tuple[int, int] | None = None) -> Callable[[Sources], Image.Image]:
    """The astronaut resized to ``size`` (her proportions kept by cropping to its aspect first), alone or at a
    third of a grey canvas: the small faces of phone photos, half-body shots and old video frames."""
    def picture(s: Sources) -> Image.Image:
        width, height = size
        portrait = cv2.resize(s.astronaut[:round(512 * height / width)], size, interpolation=cv2.INTER_AREA)
        if canvas is None:
            return Image.fromarray(portrait)
        photo = np.full((canvas[1], canvas[0], 3), 128, np.uint8)
        x, y = (canvas[0] - width) // 2, (canvas[1] - height) // 3
        photo[y:y + height, x:x + width] = portrait
        return Image.fromarray(photo)
    return picture


def two_faces(s: Sources) -> Image.Image:
    """The astronaut beside herself at 3/4 size."""
    smaller = cv2.resize(s.astronaut, None, fx=0.75, fy=0.75, interpolation=cv2.INTER_AREA)
    return Image.fromarray(np.concatenate([s.astronaut[:320, 40:360], smaller[:320, :320]], axis=1))


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


def animated_gif(path: Path, s: Sources) -> Path:
    """The astronaut, then the coffee cup: only the first frame is used."""
    frames = [astronaut(s), Image.fromarray(s.coffee).resize((512, 512))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=500)
    return path


def thousand_fps(path: Path, s: Sources) -> Path:
    """The driver with every frame shown 40 times: 1.2 s at 1000 fps (1200 frames), with its sound."""
    ffmpeg("-i", s.driver, "-vf", "fps=1000", "-c:a", "copy", path)
    return path


def huge_frames(path: Path, s: Sources) -> Path:
    """The short driver (8 frames) at HUGE_SIDE pixels a side."""
    ffmpeg("-i", s.short_driver, "-vf", f"scale={HUGE_SIDE}:{HUGE_SIDE}", "-preset", "ultrafast", path)
    return path


def strip(path: Path, s: Sources) -> Path:
    """The short driver squeezed to 640 x 16 px."""
    ffmpeg("-i", s.short_driver, "-vf", "scale=640:16", path)
    return path


def webcam_webm(path: Path, s: Sources) -> Path:
    """VP8 and Opus written to a pipe, as a browser records the webcam: the file states no duration."""
    with path.open("wb") as out:
        subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-i", str(s.driver), "-c:v", "libvpx", "-c:a",
                        "libopus", "-f", "webm", "pipe:1"], stdout=out, check=True)
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
    Case("EPS file named .png (Pillow would run Ghostscript on it)", "vector.png", saved(astronaut, "EPS"),
         "'vector.png' could not be read as an image: it is not an image file, or its format is not supported"),
    Case("animated GIF", "animated.gif", animated_gif),
    Case("WebP", "photo.webp", saved(astronaut, "WEBP")),
    Case("the astronaut at 160x160 (face 29 px across)", "small.png", saved(small_astronaut((160, 160)))),
    Case("the astronaut at 300x300 in a grey 3000x2000 half-body photo", "half_body.jpg",
         saved(small_astronaut((300, 300), (3000, 2000)))),
    Case("a 176x144 video frame (face 32 px across)", "qcif.png", saved(small_astronaut((176, 144)))),
    Case("two faces side by side", "two.png", saved(two_faces),
         note="two.png: 2 faces found; face 1 (the largest"),
]

VIDEOS = [
    Case("0-byte file", "empty.mp4", containing(b""), "'empty.mp4' is empty"),
    Case("text file named .mp4", "notes.mp4", containing(b"not a video"),
         "'notes.mp4' could not be read: it is not a video or it is damaged"),
    Case("JPEG photo named .mp4", "photo.mp4", saved(astronaut, "JPEG"),
         "'photo.mp4' could not be read: it is not a video or it is damaged"),
    Case("sound only (no video stream)", "sound.mp4", sound_only,
         "'sound.mp4' has no video stream"),
    # ffmpeg 9 (imageio-ffmpeg's newest) refuses the cut header itself; older ones read it and failed decoding.
    Case("truncated MP4 (header only, first 2 kB)", "header.mp4", lambda p, s: truncated(s.driver, p, size=2000),
         "'header.mp4' could not be (decoded: it is damaged or cut short|read: it is not a video or it is damaged)"),
    Case("truncated MP4 (first half)", "half.mp4", lambda p, s: truncated(s.driver, p, fraction=0.5),
         check=lambda result, driver: 0 < result.num_frames < driver.num_frames),
    Case("no face in any frame", "coffee.mp4", lambda p, s: write_video(p, [cv2.resize(s.coffee, (160, 120))] * 10),
         "no face was found in any frame of the driving video"),
    Case("no face in 9 of 30 frames", "gaps.mp4", some_faceless_frames,
         check=lambda result, driver: result.frames_without_face == len(FACELESS) and result.num_frames == 30,
         note=f"{len(FACELESS)} driver frames had no face"),
    Case(f"longer than the cap ({MAX_VIDEO_SECONDS:g} s)", "long.mp4",
         lambda p, s: looped(s.driver, p),
         rf"is \d\.\d s long; the limit is {MAX_VIDEO_SECONDS:g} s"),
    Case("variable frame rate (gaps of 40 and 320 ms)", "vfr.mp4", lambda p, s: variable_frame_rate(s.driver, p),
         check=lambda result, driver: abs(result.num_frames / result.fps - driver.duration) <= 1.5 / driver.fps),
    Case("no sound track", "silent.mp4", lambda p, s: write_video(p, s.driver_frames),
         check=lambda result, driver: not result.has_audio and not probe_video(result.path).has_audio,
         note="the driving video has no sound track"),
    Case("sound track shorter than the video", "short_sound.mp4", short_sound, check=every_frame_kept),
    Case("portrait phone video (stored sideways + rotation tag)", "phone.mp4", phone_portrait,
         check=lambda result, driver: result.frames_without_face == 0 and (driver.width, driver.height) == (160, 128)),
    Case("1000 fps (1200 frames in 1.2 s)", "fast.mp4", thousand_fps,
         check=lambda result, driver: driver.fps == 1000 and result.fps == MAX_DRIVER_FPS and result.has_audio
         and abs(result.num_frames - driver.duration * MAX_DRIVER_FPS) <= 1),
    Case(f"{HUGE_SIDE}x{HUGE_SIDE} px", "huge.mp4", huge_frames,
         check=lambda result, driver: driver.width == HUGE_SIDE and result.frames_without_face == 0),
    Case("640x16 px (40:1)", "strip.mp4", strip,
         r"'strip.mp4' is 640x16 px; a driving video may be at most 4 times as wide as tall"),
    Case("webcam WebM without a duration", "webcam.webm", webcam_webm,
         check=lambda result, driver: result.num_frames == 30 and result.has_audio and driver.fps == 25),
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
    assert not case.note or any(note.startswith(case.note) for note in shots.notes), shots.notes
    overlays, video, _, _ = generate()
    assert [name for _, name in overlays] == [case.file]
    assert probe_video(video).num_frames == 8


def test_a_face_smaller_than_the_models_crop_is_said_to_give_a_soft_result(pipe: TalkingHeadPipeline,
                                                                          sources: Sources) -> None:
    # The tiny test model's crop is 32 px, so the face is small for the bundled model's 128 px crop.
    small = np.asarray(small_astronaut((160, 160))(sources))
    notes = face_notes("small.png", detect_face(small, pipe.detector), 1, image_size=128)
    assert notes == ["small.png: small face (29 px across), enlarged 2.5x to the model's 128 px: the result will "
                     "look soft (a larger face gives a sharper one)"]
    assert face_notes("big.png", detect_face(sources.astronaut, pipe.detector), 1, image_size=128) == []


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


def test_photos_open_only_in_the_listed_formats(sources: Sources, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import EpsImagePlugin

    def no_ghostscript(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ghostscript was asked to run on an upload")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", no_ghostscript)
    picture = astronaut(sources).resize((96, 96))
    for format in ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"):
        picture.save(tmp_path / f"photo.{format.lower()}", format)
        assert load_photo(tmp_path / f"photo.{format.lower()}").shape == (96, 96, 3)
    for format in ("EPS", "PPM", "TGA", "ICO", "PCX", "SGI", "IM"):
        picture.save(tmp_path / "named.png", format)
        with pytest.raises(InputError, match="format is not supported \\(use JPEG, PNG, WebP, BMP, TIFF or GIF\\)"):
            load_photo(tmp_path / "named.png")


def test_drivers_are_decoded_at_a_capped_frame_rate_and_size(sources: Sources, tmp_path: Path) -> None:
    """ffmpeg resamples and scales, so neither the 1200 frames nor a full-size frame reach Python."""
    fast = thousand_fps(tmp_path / "fast.mp4", sources)
    info = probe_driver(fast)
    assert probe_video(fast).fps == 1000 and len(list(iter_video_frames(fast, decoded=info))) == info.num_frames == 36
    huge = huge_frames(tmp_path / "huge.mp4", sources)
    info = probe_driver(huge)
    assert probe_video(huge).width == HUGE_SIDE and (info.width, info.height) == (MAX_DRIVER_SIDE, MAX_DRIVER_SIDE)
    assert {frame.shape for frame in iter_video_frames(huge, decoded=info)} == {(MAX_DRIVER_SIDE, MAX_DRIVER_SIDE, 3)}


def test_a_webm_without_a_duration_is_timed_by_counting_its_frames(sources: Sources, tmp_path: Path) -> None:
    webm = webcam_webm(tmp_path / "webcam.webm", sources)
    info = probe_video(webm)
    assert (info.num_frames, info.width, info.has_audio) == (30, 160, True)
    assert info.duration == pytest.approx(1.2, abs=0.05) and info.fps == pytest.approx(25, abs=1)
    assert len(list(iter_video_frames(webm))) == 30


def test_a_driver_without_a_face_in_its_first_seconds_is_refused_there(pipe: TalkingHeadPipeline, avatar: Avatar,
                                                                       sources: Sources, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipe, "limits", replace(pipe.limits, face_within_seconds=0.4))
    coffee = cv2.resize(sources.coffee, sources.driver_frames[0].shape[1::-1])
    late = write_video(tmp_path / "late.mp4", [coffee] * 20 + sources.driver_frames)  # a face from 0.8 s on
    progress = RecordingProgress()
    with pytest.raises(InputError, match="no face was found in the first 0.4 s of the driving video"):
        pipe.animate(avatar, late, tmp_path / "out.mp4", RenderConfig(output_size=64, batch_size=4), progress)
    assert max(fraction for fraction, _ in progress.updates) <= 8 / 50  # refused at frame 12 of 50, not at the end
    assert not list(tmp_path.glob("out*"))


def test_bad_video_uploads_reach_api_callers_as_their_message(server: str, sources: Sources, tmp_path: Path) -> None:
    client = visitor(server, tmp_path)
    for case in (c for c in VIDEOS if c.file in ("notes.mp4", "header.mp4", "coffee.mp4")):
        driver = case.make(tmp_path / case.file, sources)
        with pytest.raises(AppError, match=case.error) as refused:
            client.predict([handle_file(PERSON[0])], handle_file(driver), 0, api_name="/generate")
        assert "Traceback" not in str(refused.value)


def test_non_numeric_steps_or_seed_from_an_api_caller_get_the_apps_message(server: str, tiny_app: TalkingHeadApp,
                                                                           sources: Sources, tmp_path: Path) -> None:
    client = visitor(server, tmp_path)
    photo, driver = handle_file(PERSON[0]), handle_file(sources.short_driver)
    steps = r"fine-tuning steps must be between 0 and 5 \(a whole number\)"
    for values, message in ((("abc", 0), rf"{steps}, got 'abc'"), ((None, 0), rf"{steps}, got None"),
                            ((1.5, 0), rf"{steps}, got 1.5"), ((9, 0), rf"{steps}, got 9"),
                            ((1, "x" * 500), r"the seed must be between 0 and \d+ \(a whole number\), got 'x+\.\.\."),
                            ((1, -1), "the seed must be between 0 and"), ((1, [1]), "the seed must be")):
        with pytest.raises(AppError, match=message):
            client.predict([photo], driver, values[0], seed=values[1], api_name="/generate")
    with pytest.raises(AppError, match=rf"{steps}, got 'many'"):
        client.predict([photo], driver, "1", "many", api_name="/compare")
    refused_by_app(lambda: tiny_app.generate([str(PERSON[0])], str(sources.short_driver), "abc",
                                             progress=RecordingProgress()), f"{steps}, got 'abc'")


def test_an_avatars_info_is_shown_as_plain_text_cut_short(tiny_app: TalkingHeadApp, avatar: Avatar, sources: Sources,
                                                          tmp_path: Path) -> None:
    """A shared avatar's info is its sharer's text: no link, picture or markup of theirs reaches the page."""
    info = {"k": 1, "weights": "[log in again](https://phish.example/login) <img src=x onerror=alert(1)>",
            "device": "`cpu` $$x$$", "notes": ["**urgent** ![x](https://phish.example/p.png)", "y" * 100_000,
                                               *["more"] * 20], "unknown": "[hidden](https://phish.example)"}
    shared = replace(avatar, info=info).save(tmp_path / "shared.avatar.safetensors")
    _, notes = tiny_app.animate_avatar(str(shared), str(sources.short_driver), output_size=128,
                                       progress=RecordingProgress())
    assert "\\[log in again\\]\\(https\\://phish\\.example/login\\) &lt;img src=x onerror=alert\\(1\\)&gt;" in notes
    assert "\\*\\*urgent\\*\\* \\!\\[x\\]\\(https\\://" in notes and "\\`cpu\\` \\$\\$x\\$\\$" in notes
    assert "<" not in notes and "](" not in notes and "hidden" not in notes
    assert "y" * (MAX_SHOWN_CHARS - 1) + "…" in notes and "y" * MAX_SHOWN_CHARS not in notes
    assert notes.count("\n- ") <= MAX_SHOWN_NOTES + 2  # the avatar's first notes, then the app's own


def test_request_folders_are_swept_on_a_timer_without_traffic(tmp_path: Path) -> None:
    folders = RequestFolders(tmp_path, ttl_seconds=60)
    old, recent = folders.new(), folders.new()
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    stop = folders.sweep_every(0.05)
    try:
        deadline = time.monotonic() + 5
        while old.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
    assert not old.exists() and recent.exists()


def test_the_served_app_sweeps_on_a_timer_and_refuses_uploads_over_its_size_limit(tiny_app: TalkingHeadApp,
                                                                                   sources: Sources,
                                                                                   tmp_path: Path) -> None:
    app_module = load_app_module()
    settings = replace(tiny_app.settings, max_upload_mb=1)
    demo = app_module.build_demo(TalkingHeadApp(tiny_app.pipeline, settings, work_root=tmp_path / "requests"))
    assert "sweep-request-folders" in {thread.name for thread in threading.enumerate()}
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                **app_module.launch_options(settings))
    try:
        big = tmp_path / "big.jpg"
        big.write_bytes(b"\xff" * (1024 * 1024 + 1))
        upload = httpx.post(f"http://127.0.0.1:{port}/gradio_api/upload",
                            files={"files": ("big.jpg", big.read_bytes())})
        assert upload.status_code == 413  # refused by the server, not stored
        with pytest.raises(ValueError, match="exceeds the maximum file size of 1048576 bytes"):  # said by the client
            visitor(f"http://127.0.0.1:{port}/", tmp_path).predict(
                [handle_file(big)], handle_file(sources.short_driver), 0, api_name="/generate")
    finally:
        demo.close()


# ---------------------------------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------------------------------

def test_app_limits_are_set_by_their_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"TALKING_HEAD_MAX_STEPS": "9", "TALKING_HEAD_FILE_TTL": "60", "TALKING_HEAD_QUEUE_SIZE": "3",
                        "TALKING_HEAD_CONCURRENCY": "2", "TALKING_HEAD_MAX_UPLOAD_MB": "7"}.items():
        monkeypatch.setenv(name, value)
    settings = AppSettings.from_env()
    assert (settings.max_steps, settings.file_ttl_seconds, settings.queue_size, settings.concurrency,
            settings.max_upload_mb) == (9, 60, 3, 2, 7)
    assert load_app_module().launch_options(settings) == {"max_file_size": 7 * 1024 * 1024}


class OutOfMemoryAbove(PersonalGenerator):
    """A personal generator on a small GPU: batches of more than ``limit`` frames run out of memory (its weights are
    ``personal``'s, so it renders what ``personal`` does, in the same runtime)."""

    def __init__(self, personal: PersonalGenerator, limit: int) -> None:
        super().__init__(personal.config)
        self.load_state_dict(personal.state_dict())
        self.eval().requires_grad_(False)
        self.limit, self.batches = limit, []

    def generate(self, drawings: torch.Tensor, *textures: torch.Tensor | None, **runtime: object) -> torch.Tensor:
        self.batches.append(len(drawings))
        if len(drawings) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().generate(drawings, *textures, **runtime)


def test_out_of_gpu_memory_halves_the_batch_and_renders_the_same_video(pipe: TalkingHeadPipeline, avatar: Avatar,
                                                                      sources: Sources, tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    small_gpu = OutOfMemoryAbove(avatar.generator, limit=2)
    config = RenderConfig(output_size=64, batch_size=8, generator=True)  # the batches are the generator's
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


# ---------------------------------------------------------------------------------------------------
# The served app's memory through all of the above
# ---------------------------------------------------------------------------------------------------

def test_the_app_process_stays_under_2_gb_through_the_bad_inputs(avatar: Avatar, sources: Sources,
                                                                  app_py: tuple[str, int, Path],
                                                                  synthetic_photos: list[Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``python app.py`` in its own process (tiny weights, the limits of this module's app) is sent every
    photo and driver of the tables above, avatars claiming a 2048-channel generator or a 2 x 4000 photo,
    and a 1000 fps and a 2560 px driver, as a visitor sends them; each ends in a result or the app's
    message, and the process's peak resident memory stays under 2 GB."""
    good = avatar.save(tmp_path / "good.avatar.safetensors")
    for folder in ("photos", "videos"):
        (tmp_path / folder).mkdir()
    url, pid, _ = app_py  # conftest's: started with this module's limits
    client = visitor(url, tmp_path / "downloads")

    def send(*args: object, api_name: str) -> None:
        try:
            client.predict(*args, api_name=api_name)
        except AppError as error:
            assert "Something went wrong" not in str(error)

    for case in PHOTOS:
        photo = case.make(tmp_path / "photos" / case.file, sources)
        send([handle_file(photo)], handle_file(sources.short_driver), 0, api_name="/generate")
    for case in VIDEOS:
        driver = case.make(tmp_path / "videos" / case.file, sources)
        send([handle_file(synthetic_photos[0])], handle_file(driver), 0, api_name="/generate")
    for change in (config_with(base_channels=2048, max_channels=2048),
                   tensor_with("photo", torch.zeros(2, 4000, 3, dtype=torch.uint8))):
        with pytest.raises(AppError, match="unknown size|paste-back photo of shape"):
            client.predict(handle_file(rewritten(good, tmp_path / "crafted.avatar.safetensors", change)),
                           handle_file(sources.short_driver), api_name="/animate_avatar")
    for make in (thousand_fps, huge_frames):
        driver = make(tmp_path / f"{make.__name__}.mp4", sources)
        video, _ = client.predict(handle_file(good), handle_file(driver), api_name="/animate_avatar")
        assert probe_video(video).fps <= MAX_DRIVER_FPS
    peak = peak_resident_bytes(pid)
    with capsys.disabled():
        print(f"\npeak resident memory of the served app (python app.py) through the bad inputs: "
              f"{peak / 1024**2:.0f} MB")
    assert peak < MAX_RESIDENT_BYTES
