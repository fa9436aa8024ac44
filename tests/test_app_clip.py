"""A clip of yourself in the app (issue 27): its chosen shots shown with their landmarks, times and reasons before
anything is rendered, passed to the library as the command line passes it, *Compare shots* from one clip measured
on its second half, and bad clips ending in the library's message, never a traceback or a server path."""

from __future__ import annotations

import re
import shutil
from functools import partial
from pathlib import Path

import cv2
import gradio as gr
import numpy as np
import pytest
from app_support import ASTRONAUT, RecordingProgress, visitor
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from talking_head.avatar import Avatar
from talking_head.clip_shots import ClipShotsConfig, choose_shots
from talking_head.data.demo import write_driver_video
from talking_head.media import VideoSink, iter_video_frames, probe_video
from talking_head_app.handlers import OVERLAY_SIDE, TalkingHeadApp, escape_markdown

REFUSED = "Please check your input"  # the title of every InputError the app shows
CLIP_FRAMES = 24  # the test app's limit is 3 s: at 25 fps, a clip of 76 frames or more is too long


def write_clip(path: Path, frames: list[np.ndarray]) -> Path:
    height, width = frames[0].shape[:2]
    with VideoSink(path, width, height, 25.0) as sink:
        for frame in frames:
            sink.write(frame)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic person talking and moving the head, as a visitor records themselves (160 px, no sound)."""
    return write_driver_video(tmp_path_factory.mktemp("clip") / "me.mp4", identity_id=7, num_frames=CLIP_FRAMES,
                              image_size=160, with_audio=False)


def refused(call, error: str) -> str:
    with pytest.raises(gr.Error, match=error) as raised:
        call()
    assert raised.value.title == REFUSED and "Traceback" not in raised.value.message
    return raised.value.message


def test_a_clip_shows_its_chosen_shots_with_landmarks_times_and_reasons(tiny_app: TalkingHeadApp, clip: Path) -> None:
    gallery, notes = tiny_app.preview_clip(str(clip))  # no number sent: the library's default
    pipe = tiny_app.pipeline
    chosen = choose_shots(clip, pipe.detector, ClipShotsConfig(), pipe.limits)
    assert len(gallery) == len(chosen.shots) == ClipShotsConfig().shots
    assert [caption for _, caption in gallery] == [f"me.mp4 at {s.time:.2f} s: {s.reason}" for s in chosen.shots]
    assert "widest mouth opening" in gallery[0][1]
    for (thumbnail, _), crop in zip(gallery, pipe.prepare_shots([chosen]).crops):
        bare = cv2.resize(crop, (OVERLAY_SIDE, OVERLAY_SIDE), interpolation=cv2.INTER_CUBIC)
        drawn = (thumbnail != bare).any(axis=-1).mean()
        assert thumbnail.shape == bare.shape and 0.01 < drawn < 0.5  # the crop, with its landmarks drawn on it
    assert f"me\\.mp4\\: 8 shots from {CLIP_FRAMES} frames" in notes
    assert all(f"- {escape_markdown(caption)}" in notes.splitlines() for _, caption in gallery)  # each time and reason, whole
    assert len(tiny_app.preview_clip(str(clip), 3)[0]) == 3
    assert tiny_app.preview_clip(None) == ([], "")  # the clip was removed


def test_generate_takes_a_clip_beside_a_photo_as_the_command_line_does(tiny_app: TalkingHeadApp, clip: Path,
                                                                      driver_video: Path) -> None:
    overlays, video, avatar_file, notes = tiny_app.generate([str(ASTRONAUT)], str(driver_video), 0, clip=str(clip),
                                                            shots=4, progress=RecordingProgress())
    captions = [caption for _, caption in overlays]
    assert captions[0] == "astronaut.jpg" and len(captions) == 5
    assert all(re.fullmatch(r"me\.mp4 at \d\.\d\d s: .+", caption) for caption in captions[1:])
    as_the_cli = tiny_app.pipeline.prepare_shots([str(ASTRONAUT), str(clip)], shots=4)
    avatar = Avatar.load(avatar_file)
    assert avatar.info["k"] == 5 and avatar.info["notes"] == as_the_cli.notes
    np.testing.assert_array_equal(avatar.bank_crops, as_the_cli.bank_crops)
    assert probe_video(video).num_frames == 30 and "me\\.mp4\\: 4 shots" in notes
    refused(partial(tiny_app.generate, [], str(driver_video), 0, progress=RecordingProgress()),
            "upload at least one photo of a face, or a clip of yourself")


@pytest.mark.slow
def test_compare_from_one_clip_measures_each_k_on_its_second_half(tiny_app: TalkingHeadApp, clip: Path) -> None:
    video, table = tiny_app.compare(None, None, "1, 32", 0, clip=str(clip), progress=RecordingProgress())
    half = CLIP_FRAMES // 2
    pipe = tiny_app.pipeline
    usable = len(choose_shots(clip, pipe.detector, ClipShotsConfig(shots=32), pipe.limits, max_frames=half).shots)
    assert 1 < usable < 32 and f"gave {usable} usable shots, so K is capped at {usable}" in table
    rows = re.findall(r"^\| (\d+) \| feed-forward \| (warp|model) \| (\d\.\d+) ± ", table, re.MULTILINE)
    assert [(int(k), who) for k, who, _ in rows] == [(1, "warp"), (1, "model"), (usable, "warp"), (usable, "model")]
    assert all(0 < float(ssim) <= 1 for _, _, ssim in rows)
    targets = int(re.search(r"measured on (\d+) frames of its second half", table)[1])
    assert 0.8 * half <= targets <= half  # the truth: the second half's frames where dlib finds the face
    info = probe_video(video)  # no driver given: the clip drives itself; driver | K=1 | K=usable
    assert (info.num_frames, info.width) == (CLIP_FRAMES, 3 * 256)
    refused(partial(tiny_app.compare, [str(ASTRONAUT)], None, "1", 0, clip=str(clip), progress=RecordingProgress()),
            "compare from photos or from a clip, not both")


# -- bad clips -------------------------------------------------------------------------------------------------

def faceless(path: Path, clip: Path) -> Path:
    rng = np.random.default_rng(0)
    return write_clip(path, [cv2.GaussianBlur(rng.integers(0, 255, (160, 160, 3), np.uint8), (0, 0), 3)] * 12)


def one_frame(path: Path, clip: Path) -> Path:
    return write_clip(path, list(iter_video_frames(clip, 1)))


def photo_renamed(path: Path, clip: Path) -> Path:
    return Path(shutil.copyfile(ASTRONAUT, path))


def too_long(path: Path, clip: Path) -> Path:
    return write_clip(path, list(iter_video_frames(clip)) * 4)  # 3.84 s; the limit is 3 s


#: file, how it is made, and what each button gives: a refusal's message, or (a note, the shots shown).
BAD_CLIPS = [
    ("noface.mp4", faceless, "noface.mp4: a face was found in 0 of its 12 frames",
     "noface.mp4: a face was found in 0 of its 6 frames"),
    ("one.mp4", one_frame, ("one\\.mp4\\: its only frame", 1), "'one.mp4' has 1 frame: self-reenactment needs at least 2"),
    ("photo.mp4", photo_renamed, "video 'photo.mp4' could not be read: it is not a video or it is damaged",
     "video 'photo.mp4' could not be read"),
    ("long.mp4", too_long, ("long\\.mp4\\: only its first 3 s were read", 8),
     "long.mp4 is 3.8 s long; a clip to compare from may be at most 3 s"),
]


@pytest.mark.parametrize("file, make, shown, compared", BAD_CLIPS, ids=[case[0] for case in BAD_CLIPS])
def test_a_bad_clip_ends_in_a_clear_message_or_a_result(tiny_app: TalkingHeadApp, clip: Path, tmp_path: Path,
                                                        file: str, make, shown, compared) -> None:
    bad = str(make(tmp_path / file, clip))
    compare = partial(tiny_app.compare, None, None, "1, 8", 0, clip=bad, progress=RecordingProgress())
    assert str(tmp_path) not in refused(compare, re.escape(compared))
    if isinstance(shown, str):
        for call in (partial(tiny_app.preview_clip, bad),
                     partial(tiny_app.generate, [], bad, 0, clip=bad, progress=RecordingProgress())):
            assert str(tmp_path) not in refused(call, re.escape(shown))
        return
    note, count = shown
    gallery, notes = tiny_app.preview_clip(bad)
    assert len(gallery) == count and note in notes


def test_a_photo_sent_as_the_clip_and_shots_out_of_range_are_refused(tiny_app: TalkingHeadApp, clip: Path) -> None:
    refused(partial(tiny_app.preview_clip, str(ASTRONAUT)), "'astronaut.jpg' is not a video file")
    for shots in (0, 33, 2.5):
        refused(partial(tiny_app.preview_clip, str(clip), shots), "shots from the clip must be between 1 and 32")


def test_bad_clips_reach_api_callers_as_their_message_without_a_server_path(server: str, clip: Path,
                                                                           tmp_path: Path) -> None:
    client = visitor(server, tmp_path / "client")
    gallery, _ = client.predict(clip=handle_file(clip), shots=2, api_name="/preview_clip")  # as docs/api.md shows
    assert len(gallery) == 2 and gallery[0]["caption"].startswith("me.mp4 at ")
    for file, make, message in ((f, m, shown) for f, m, shown, _ in BAD_CLIPS if isinstance(shown, str)):
        with pytest.raises(AppError, match=re.escape(message)) as raised:
            client.predict(handle_file(make(tmp_path / file, clip)), 8, api_name="/preview_clip")
        assert "Traceback" not in str(raised.value) and "/tmp" not in str(raised.value)
    with pytest.raises(AppError, match="shots from the clip must be between 1 and 32"):
        client.predict(handle_file(clip), "eight", api_name="/preview_clip")
