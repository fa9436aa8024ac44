"""The Gradio app as its visitors and API callers meet it: a real server on 127.0.0.1, driven with
gradio_client, on a tiny randomly initialised model (the app must work with whatever weights load)."""

from __future__ import annotations

import copy
import logging
import os
import re
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
from app_support import (
    ASTRONAUT,
    EXAMPLES,
    PERSON,
    RecordingProgress,
    load_app_module,
    visitor,
)
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from skimage import data

from talking_head.avatar import Avatar
from talking_head.errors import InputError
from talking_head.media import probe_video
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import RenderConfig
from talking_head_app.handlers import (
    ZERO_GPU_MAX_SECONDS,
    AppSettings,
    Job,
    RequestFolders,
    TalkingHeadApp,
    _reserved_seconds,
    escape_markdown,
    output_size_choices,
    parse_ks,
    visitor_errors,
)


@pytest.mark.slow
def test_generate_returns_driven_mp4_avatar_and_overlays_and_the_avatar_animates_again(
        server: str, driver_video: Path, tmp_path: Path) -> None:
    client = visitor(server, tmp_path)
    overlays, video, avatar_file, notes = client.predict(
        [handle_file(p) for p in PERSON], handle_file(driver_video), 2, api_name="/generate")
    info, driver = probe_video(video), probe_video(driver_video)
    assert (info.num_frames, info.fps, info.height, info.has_audio) == (driver.num_frames, driver.fps, 256, True)
    assert [o["caption"] for o in overlays] == [p.name for p in PERSON]
    assert np.asarray(Image.open(overlays[0]["image"])).shape == (256, 256, 3)
    avatar = Avatar.load(avatar_file)
    assert (avatar.info["k"], avatar.info["steps"]) == (3, 2)
    assert "rendering 30 frames" in notes and "the learned generator is off" in notes
    assert "2 fine-tuning steps train the learned generators, which are off" in notes  # so they changed nothing

    again, again_notes = client.predict(handle_file(avatar_file), handle_file(driver_video), "relative", False, True,
                                        128, api_name="/animate_avatar")
    info = probe_video(again)
    assert (info.num_frames, info.height, info.width) == (30, 128, 3 * 128)  # driver | photo | result
    assert "personalising" not in again_notes  # no fine-tuning this time
    _, with_generator = client.predict(handle_file(avatar_file), handle_file(driver_video), "relative", False, False,
                                       128, "bottom-right", True, api_name="/animate_avatar")
    assert "the generator ran in" in with_generator


def test_unreadable_and_faceless_photos_get_clear_messages(server: str, driver_video: Path, tmp_path: Path) -> None:
    client = visitor(server, tmp_path)
    not_an_image = tmp_path / "holiday.jpg"
    not_an_image.write_text("this is a text file with a .jpg name")
    coffee = tmp_path / "coffee.jpg"
    Image.fromarray(data.coffee()).save(coffee)
    with pytest.raises(AppError, match=r"'holiday.jpg' could not be read as an image") as unreadable:
        client.predict([handle_file(not_an_image)], handle_file(driver_video), 0, api_name="/generate")
    with pytest.raises(AppError, match=r"coffee.jpg: no face found") as faceless:
        client.predict([handle_file(coffee)], handle_file(driver_video), 0, api_name="/generate")
    for error in (unreadable.value, faceless.value):
        assert "Traceback" not in str(error)


def test_too_long_driving_video_is_refused_with_the_limit(server: str, tmp_path: Path) -> None:
    with pytest.raises(AppError, match=r"4\.0 s long; the limit is 3 s"):
        visitor(server, tmp_path).predict([handle_file(ASTRONAUT)], handle_file(EXAMPLES / "driver.mp4"), 0,
                                          api_name="/generate")


@pytest.mark.slow
def test_two_visitors_at_the_same_time_each_get_their_own_person(server: str, tiny_app: TalkingHeadApp,
                                                                  driver_video: Path, tmp_path: Path) -> None:
    photos = {"astronaut": ASTRONAUT, "synthetic": PERSON[0]}

    def visit(name: str) -> Avatar:
        client = visitor(server, tmp_path / name)
        _, _, avatar_file, _ = client.predict([handle_file(photos[name])], handle_file(driver_video), 1,
                                              api_name="/generate")
        return Avatar.load(avatar_file)

    with ThreadPoolExecutor(2) as pool:
        avatars = dict(zip(photos, pool.map(visit, photos)))
    for name, photo in photos.items():
        own_crop = tiny_app.pipeline.prepare_shots([photo]).crops[0]
        np.testing.assert_array_equal(avatars[name].source_crop, own_crop)
    assert not np.array_equal(avatars["astronaut"].source_crop, avatars["synthetic"].source_crop)


@pytest.mark.slow
def test_compare_endpoint_returns_one_labelled_column_per_k_and_a_table(server: str, driver_video: Path,
                                                                        tmp_path: Path) -> None:
    video, table = visitor(server, tmp_path).predict([handle_file(p) for p in PERSON], handle_file(driver_video),
                                                     "1, 3", 1, api_name="/compare")
    info = probe_video(video)
    assert (info.num_frames, info.height, info.width) == (30, 256, 3 * 256)  # driver | K=1 | K=3
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()
            if re.match(r"\| \d", line)]
    assert [(k, steps, measured_on) for k, steps, _, _, _, _, measured_on in rows] == [
        ("1", "1", "2 unseen photos"), ("3", "1", "its own shots")]
    # Each metric in its column, in its range. Seconds are shown to 0.1 s, and the tiny model's second K took 0.2 s
    # (2-core Xeon): on a faster or quieter machine it shows 0.0, a likely cause of this test's one failure.
    for _, _, seconds, ssim, psnr, csim, _ in rows:
        assert float(seconds) >= 0 and 0 < float(ssim) <= 1 and 5 < float(psnr) < 100 and -1 <= float(csim) <= 1


# -- handlers called directly -----------------------------------------------------------------------

def test_progress_covers_face_finding_every_fine_tuning_step_and_rendering(tiny_app: TalkingHeadApp,
                                                                           driver_video: Path) -> None:
    progress = RecordingProgress()
    tiny_app.generate([str(p) for p in PERSON[:2]], str(driver_video), 3, progress=progress)
    texts = [text for _, text in progress.updates]
    assert texts.count("finding faces") == 2
    assert [t for t in texts if t.startswith("fine-tuning")] == [f"fine-tuning step {i}/3" for i in (1, 2, 3)]
    rendering = [fraction for fraction, text in progress.updates if text == "rendering"]
    assert rendering and rendering == sorted(rendering) and rendering[-1] == pytest.approx(1.0)


def test_unexpected_errors_reach_visitors_as_a_reference_and_the_log_as_a_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    @visitor_errors
    def broken() -> None:
        raise RuntimeError("secret internal detail")

    @visitor_errors
    def refused() -> None:
        raise InputError("the driving video has no face")

    with caplog.at_level(logging.ERROR), pytest.raises(gr.Error) as error:
        broken()
    reference = str(error.value.message).split("reference ")[1][:8]
    assert "secret" not in error.value.message and "Traceback" not in error.value.message
    assert reference in caplog.text and "secret internal detail" in caplog.text and "Traceback" in caplog.text
    with pytest.raises(gr.Error, match="the driving video has no face"):
        refused()


def test_requests_over_the_limits_are_refused_before_any_work(tiny_app: TalkingHeadApp, driver_video: Path,
                                                              tmp_path: Path) -> None:
    small_gpu = TalkingHeadApp(tiny_app.pipeline, AppSettings(max_steps=100, gpu_seconds_cap=11),
                               work_root=tmp_path)
    with pytest.raises(gr.Error, match=r"needs about \d+ s of GPU time, more than the 11 s"):
        small_gpu.generate([str(ASTRONAUT)], str(driver_video), 100, progress=RecordingProgress())
    with pytest.raises(gr.Error, match="fine-tuning steps must be between 0 and 5"):
        tiny_app.generate([str(ASTRONAUT)], str(driver_video), 6, progress=RecordingProgress())
    with pytest.raises(gr.Error, match="upload at least one photo"):
        tiny_app.generate([], str(driver_video), 0, progress=RecordingProgress())
    few = TalkingHeadApp(with_limits(tiny_app.pipeline, max_shots=2), tiny_app.settings, work_root=tmp_path)
    for request in (lambda: few.generate([str(ASTRONAUT)] * 3, str(driver_video), 0, progress=RecordingProgress()),
                    lambda: few.compare([str(ASTRONAUT)] * 3, str(driver_video), progress=RecordingProgress())):
        with pytest.raises(gr.Error, match="3 photos given; at most 2 can be used"):  # the pipeline's check
            request()
    small = TalkingHeadApp(with_limits(tiny_app.pipeline, max_output_size=200), tiny_app.settings, work_root=tmp_path)
    with pytest.raises(gr.Error, match="output height is 256 px; at most 200 px"):
        small.animate_avatar("never opened.safetensors", str(driver_video), output_size=256,
                             progress=RecordingProgress())
    jobs = []  # what compare, which offers no size, asks for: the UI's default under the limit
    small._compare_on_gpu = lambda job, *_: jobs.append(job) or SimpleNamespace(path="compare.mp4", table="")
    small.compare([str(ASTRONAUT)], str(driver_video), "1", 0, progress=RecordingProgress())
    assert [job.render.output_size for job in jobs] == [128]
    assert not list(tmp_path.iterdir())  # no request folder was made


def with_limits(pipeline: TalkingHeadPipeline, **limits: float) -> TalkingHeadPipeline:
    """The same pipeline (its model shared) under other limits."""
    limited = copy.copy(pipeline)
    limited.limits = replace(pipeline.limits, **limits)
    return limited


def test_gpu_reservation_grows_with_the_work_and_stays_within_zero_gpu(driver_video: Path) -> None:
    base = Job(str(driver_video), RenderConfig(), frames=100, steps=10)
    bigger = [Job(str(driver_video), RenderConfig(), frames=200, steps=10),
              Job(str(driver_video), RenderConfig(), frames=100, steps=50),
              Job(str(driver_video), RenderConfig(), frames=100, steps=10, avatars=3)]
    assert all(job.gpu_seconds > base.gpu_seconds for job in bigger)
    huge = Job(str(driver_video), RenderConfig(), frames=10**6, steps=10**4)
    assert _reserved_seconds(huge, None) == ZERO_GPU_MAX_SECONDS


def test_request_folders_are_private_and_old_ones_are_swept(tmp_path: Path) -> None:
    folders = RequestFolders(tmp_path, ttl_seconds=60)
    first, second = folders.new(), folders.new()
    assert first != second and first.parent == second.parent == tmp_path
    (first / "result.mp4").write_bytes(b"x")
    an_hour_ago = time.time() - 3600
    os.utime(first, (an_hour_ago, an_hour_ago))
    third = folders.new()
    assert not first.exists() and second.exists() and third.exists()


def test_k_values_are_parsed_or_refused_with_an_example() -> None:
    assert parse_ks("8, 1 32,1", max_count=4, max_shots=32) == [1, 8, 32]
    for bad in ("1, eight", "0, 8", "", "1, 2, 3, 4, 5", "64"):
        with pytest.raises(InputError, match="1, 8, 32"):
            parse_ks(bad, max_count=4, max_shots=32)
    with pytest.raises(InputError, match="between 1 and 8"):
        parse_ks("1, 16", max_count=4, max_shots=8)


def test_output_sizes_offered_respect_the_server_cap() -> None:
    assert output_size_choices(1024) == ([128, 256, 512], 256)
    assert output_size_choices(300) == ([128, 256], 256)
    assert output_size_choices(200) == ([128], 128)
    assert output_size_choices(96) == ([96], 96)  # a cap below every preset: the cap itself


@pytest.mark.slow
def test_python_app_py_serves_the_ui_with_weights_from_the_environment(app_py: tuple[str, int, Path]) -> None:
    url, _, log = app_py
    with urllib.request.urlopen(url + "config", timeout=10) as response:
        config = response.read().decode()
    # TALKING_HEAD_MAX_STEPS=5 is the steps sliders' maximum ("maximum":5 is nowhere else in the page's config)
    assert '"gen-btn"' in config and '"maximum":5' in config.replace(" ", "")
    assert "using the bundled checkpoint" in log.read_text()  # the weights TALKING_HEAD_CHECKPOINTS names


# -- the face picker --------------------------------------------------------------------------------

def test_the_faces_of_a_group_photo_are_shown_numbered_and_the_one_picked_is_used(
        tiny_app: TalkingHeadApp, driver_video: Path, tmp_path: Path) -> None:
    """Two astronauts side by side, the right one smaller and blue (red and blue swapped: who is who shows in
    every crop): the picker shows both, numbered by size as ``face`` takes them, and generate with face 2
    personalises the smaller one (issue 28, point 3)."""
    photo, alone = two_astronauts(tmp_path / "pair.png"), tmp_path / "alone.png"
    Image.fromarray(data.astronaut()).save(alone)

    shown = tiny_app.find_faces([str(photo), str(alone)])
    assert [caption for _, caption in shown] == ["pair.png: face 1 (the largest)", "pair.png: face 2"]
    assert [is_blue(thumbnail) for thumbnail, _ in shown] == [False, True]
    assert shown[0][0].shape == (128, 128, 3)
    assert tiny_app.find_faces(None) == [] and tiny_app.find_faces([str(alone)]) == []  # one face: no choice

    overlays, _, avatar_file, notes = tiny_app.generate([str(photo)], str(driver_video), 0, face=2,
                                                        progress=RecordingProgress())
    assert escape_markdown("pair.png: 2 faces found; face 2 (number 2 by size") in notes
    assert is_blue(Avatar.load(avatar_file).source_crop) and is_blue(overlays[0][0])
    with pytest.raises(gr.Error, match="2 faces found, so there is no face 3"):
        tiny_app.generate([str(photo)], str(driver_video), 0, face=3, progress=RecordingProgress())
    with pytest.raises(gr.Error, match="the face number must be between 1 and 100"):
        tiny_app.generate([str(photo)], str(driver_video), 0, face="the left one", progress=RecordingProgress())
    with pytest.raises(gr.Error, match="the face number must be between 1 and 100"):  # the Compare tab's picker too
        tiny_app.compare([str(photo)], str(driver_video), "1", 0, face="the left one", progress=RecordingProgress())


def test_the_face_picker_answers_an_api_caller_as_docs_api_md_shows(server: str, driver_video: Path,
                                                                   tmp_path: Path) -> None:
    """/find_faces numbers the faces; /compare takes the one picked (its own picker in the Compare tab) and its
    table's notes name it."""
    photo = two_astronauts(tmp_path / "group.jpg")
    client = visitor(server, tmp_path)
    faces = client.predict([handle_file(photo)], api_name="/find_faces")
    assert [face["caption"] for face in faces] == ["group.jpg: face 1 (the largest)", "group.jpg: face 2"]
    _, table = client.predict([handle_file(photo)], handle_file(driver_video), "1", 0, face=2, api_name="/compare")
    assert r"group\.jpg\: 2 faces found; face 2 \(number 2 by size" in table  # as plain text: the name is the visitor's
    with pytest.raises(AppError, match="2 faces found, so there is no face 3"):
        client.predict([handle_file(photo)], handle_file(driver_video), "1", 0, face=3, api_name="/compare")


def test_the_face_picker_shows_only_while_a_photo_holds_several_faces() -> None:
    show = load_app_module().show_face_picker
    assert show([("face1.png", "pair.png: face 1 (the largest)"), ("face2.png", "pair.png: face 2")]) == (
        gr.update(visible=True), gr.update(visible=True))
    for nothing in ([], None):  # photos with one face each, or none: hidden, and back to the largest face
        assert show(nothing) == (gr.update(visible=False), gr.update(visible=False, value=1))


def two_astronauts(path: Path) -> Path:
    """The astronaut, and beside her, smaller and blue (red and blue swapped), herself: a photo of two faces."""
    astronaut = data.astronaut()
    blue = np.asarray(Image.fromarray(astronaut[..., ::-1]).resize((384, 384), Image.Resampling.LANCZOS))
    pair = np.full((512, 896, 3), 128, np.uint8)
    pair[:, :512], pair[64:448, 512:] = astronaut, blue
    Image.fromarray(pair).save(path)
    return path


def is_blue(image: np.ndarray) -> bool:
    """Whether a crop is of the blue astronaut (her face is red over blue; the blue one's blue over red)."""
    red, _, blue = image.reshape(-1, 3).astype(float).mean(axis=0)
    return bool(blue > red)


def test_pasted_back_the_apps_default_height_is_the_photos_own(tiny_app: TalkingHeadApp, driver_video: Path) -> None:
    """The output height's default ('auto') follows the library: 256 alone, the photo's own pasted back."""
    _, pasted, _, _ = tiny_app.generate([str(ASTRONAUT)], str(driver_video), 0, paste_back=True,
                                        progress=RecordingProgress())
    _, alone, _, _ = tiny_app.generate([str(ASTRONAUT)], str(driver_video), 0, progress=RecordingProgress())
    photo = Image.open(ASTRONAUT)
    assert (probe_video(pasted).width, probe_video(pasted).height) == photo.size != (256, 256)
    assert probe_video(alone).height == 256
