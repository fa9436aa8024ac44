"""Live mode's loop (talking_head.live) on frames of examples/driver.mp4, with tiny untrained avatars: the
texture path's warp follows the landmarks whatever the generator's weights, so motion shows."""

from __future__ import annotations

import re
from dataclasses import replace
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from app_support import ASTRONAUT, EXAMPLES, tiny_weights
from skimage import data

from talking_head.avatar import Avatar
from talking_head.cli import main
from talking_head.landmarks.detect import get_detector
from talking_head.landmarks.track import TrackConfig
from talking_head.limits import Limits
from talking_head.live import (HINT_FACE_LOST, HINT_NO_FACE_YET, LIVE_SPLINE_GRID, STAGES, CameraFeed, LiveConfig,
                               LiveSession, run_live)
from talking_head.media import iter_video_frames, probe_video
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.watermark import stamp_synthetic

SIZE = 128
CONFIG = LiveConfig(output_size=SIZE, reference_frames=3)


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> TalkingHeadPipeline:
    return TalkingHeadPipeline.from_pretrained(tiny_weights(tmp_path_factory.mktemp("weights")), device="cpu",
                                               landmark_backend="dlib")


@pytest.fixture(scope="module")
def avatar(pipe: TalkingHeadPipeline) -> Avatar:
    return pipe.personalize([EXAMPLES / "person_1.jpg"], steps=0)


@pytest.fixture(scope="module")
def other_avatar(pipe: TalkingHeadPipeline) -> Avatar:
    return pipe.personalize([ASTRONAUT], steps=0)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """The first 40 frames (1.6 s) of the example driver: its mouth opens and closes, its head moves."""
    return list(iter_video_frames(EXAMPLES / "driver.mp4", max_frames=40))


def mark_is_on(image: np.ndarray) -> bool:
    """The SYNTHETIC mark, read the way tests/test_mark.py reads it: white letters in a darkened box.
    The mark drawn on black gives the letters (pure white at their core) and, on white, the box."""
    letters = stamp_synthetic(np.zeros_like(image))[..., 0] > 250
    box = stamp_synthetic(np.full_like(image, 255))[..., 0] < 255
    box_only = box & ~(stamp_synthetic(np.zeros_like(image))[..., 0] > 0)
    return bool((image[letters] >= 250).all() and (image[box_only] <= 0.35 * 255 + 1).all())


def test_the_avatar_follows_the_driver_and_every_frame_is_marked(avatar: Avatar, frames: list[np.ndarray]) -> None:
    shown = list(run_live(frames, avatar, CONFIG))
    assert len(shown) == len(frames) and all(s.face_found and s.hint is None for s in shown[CONFIG.reference_frames:])
    assert all(s.image.shape == (SIZE, SIZE, 3) and s.image.dtype == np.uint8 for s in shown)
    assert all(mark_is_on(s.image) for s in shown)
    images = np.stack([s.image for s in shown]).astype(np.float32)
    moving = np.abs(np.diff(images, axis=0)).mean(axis=(1, 2, 3))
    assert np.median(moving) > 0.3 and moving.max() > 1.5  # the face moves as the driver does
    # A driver that holds still: the output settles (the motion above is the driver's, not noise).
    still = [s.image.astype(np.float32) for s in run_live([frames[10]] * 12, avatar, CONFIG)]
    assert np.abs(still[-1] - still[-2]).mean() < 0.05 < moving.max()
    assert all(set(s.timings_ms) == set(STAGES) and s.latency_ms > 0 for s in shown)
    assert shown[-1].fps > 0


def test_sessions_keep_their_own_avatar_and_state(avatar: Avatar, other_avatar: Avatar,
                                                  frames: list[np.ndarray]) -> None:
    """Two visitors streaming at once: interleaved steps give each exactly what it gets alone."""
    detector = get_detector("dlib")
    alone = [s.image for s in run_live(frames[:12], avatar, CONFIG, detector)]
    first, second = LiveSession(avatar, CONFIG, detector), LiveSession(other_avatar, CONFIG, detector)
    together_first, together_second = [], []
    for index, frame in enumerate(frames[:12]):
        together_first.append(first.step(frame).image)
        together_second.append(second.step(frames[-1 - index]).image)  # the other visitor moves differently
    assert all(np.array_equal(a, b) for a, b in zip(alone, together_first))
    assert np.abs(together_first[-1].astype(int) - together_second[-1]).mean() > 10  # another face
    assert first.retargeter is not second.retargeter and first.smoother is not second.smoother


def test_a_frame_without_a_face_shows_the_last_good_frame_and_a_hint(avatar: Avatar,
                                                                     frames: list[np.ndarray]) -> None:
    session = LiveSession(avatar, CONFIG)
    before = session.step(data.coffee())  # no face seen yet: the avatar at rest, marked
    assert not before.face_found and before.hint == HINT_NO_FACE_YET and mark_is_on(before.image)
    for frame in frames[:6]:
        good = session.step(frame)
    assert good.face_found
    for nothing in (np.zeros_like(frames[0]), data.coffee(), data.chelsea(), np.zeros((0, 0, 3), np.uint8), None):
        lost = session.step(nothing)
        assert not lost.face_found and lost.hint == HINT_FACE_LOST
        assert np.array_equal(lost.image, good.image)
    assert session.step(frames[6]).face_found  # and back


def test_recentre_takes_the_next_frames_as_the_neutral_pose(avatar: Avatar, frames: list[np.ndarray]) -> None:
    config = LiveConfig(output_size=SIZE, reference_frames=1, track=TrackConfig(enabled=False))
    session = LiveSession(avatar, config)
    for frame in frames[:5]:
        session.step(frame)
    held = session.step(frames[30])
    session.recentre()
    assert session.calibrating and session.retargeter.reference is None
    recentred = session.step(frames[30])
    assert not session.calibrating
    fresh = LiveSession(avatar, config).step(frames[30])  # a session that starts at this frame
    assert np.array_equal(recentred.image, fresh.image)
    assert np.abs(recentred.image.astype(int) - held.image).mean() > 0.5  # the reference did change


def test_the_camera_feed_hands_over_the_newest_frame_and_counts_the_rest() -> None:
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(20)]
    with CameraFeed(frames, fps=100) as feed:
        taken = []
        for frame, captured_at in feed:
            assert captured_at <= time.monotonic()
            taken.append(int(frame[0, 0, 0]))
            time.sleep(0.05)  # a slow renderer
    assert taken == sorted(taken) and taken[-1] == 19 and feed.dropped > 0
    assert len(taken) + feed.dropped == 20


def test_the_bundled_checkpoint_runs_live(frames: list[np.ndarray], tmp_path: Path) -> None:
    avatar = TalkingHeadPipeline.from_pretrained(None, device="cpu", landmark_backend="dlib").personalize(
        [EXAMPLES / "person_1.jpg"], steps=0)
    shown = list(run_live(frames[:8], avatar, LiveConfig(output_size=256, reference_frames=2)))
    assert all(s.face_found and s.image.shape == (256, 256, 3) and mark_is_on(s.image) for s in shown)


def test_the_live_command_records_a_marked_mp4_from_a_video(avatar: Avatar, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    avatar_file = avatar.save(tmp_path / "person.avatar.safetensors")
    out = tmp_path / "live.mp4"
    main(["live", "--avatar", str(avatar_file), "--video", str(EXAMPLES / "driver.mp4"), "--record", str(out),
          "--no-window", "--seconds", "1.5", "--threads", "1"])
    report = capsys.readouterr().out
    assert re.search(r"frames shown in .* frames/s .* latency camera -> shown median \d+ ms, p95 \d+ ms", report)
    info = probe_video(out)
    assert (info.width, info.height) == (256, 256) and info.fps == 25 and 1.0 <= info.duration <= 2.0  # real time
    letters = stamp_synthetic(np.zeros((256, 256, 3), np.uint8))[..., 0] > 250
    box = (stamp_synthetic(np.full((256, 256, 3), 255, np.uint8))[..., 0] < 255) & ~cv2.dilate(
        letters.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    for frame in iter_video_frames(out):
        assert frame[letters].mean() > 200 and frame[box].mean() < 100  # white letters in a darkened box


def test_the_live_command_without_a_camera_exits_2_saying_so(avatar: Avatar, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    avatar_file = avatar.save(tmp_path / "person.avatar.safetensors")
    with pytest.raises(SystemExit) as exit_info:
        main(["live", "--avatar", str(avatar_file), "--camera", "57", "--no-window"])
    assert exit_info.value.code == 2
    assert "no camera could be opened at index 57" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["live", "--avatar", str(tmp_path / "missing.avatar.safetensors"), "--video", str(EXAMPLES / "driver.mp4")])
    assert exit_info.value.code == 2


def test_the_live_tab_keeps_one_session_per_visitor(pipe: TalkingHeadPipeline, avatar: Avatar, other_avatar: Avatar,
                                                    frames: list[np.ndarray], tmp_path: Path) -> None:
    import gradio as gr

    from talking_head_app.handlers import AppSettings, TalkingHeadApp
    from talking_head_app.live_tab import WAITING, LiveHandlers

    handlers = LiveHandlers(TalkingHeadApp(pipe, AppSettings(), work_root=tmp_path / "requests"),
                            LiveConfig(output_size=SIZE, reference_frames=2))
    with pytest.raises(gr.Error, match="choose an avatar first"):
        handlers.start(None)
    _, status, state = handlers.stream(frames[0], None)  # frames before Start: nothing replaced
    assert status == WAITING and state == gr.skip()
    first, rest, _ = handlers.start(str(avatar.save(tmp_path / "a.avatar.safetensors")))
    second, _, _ = handlers.start(str(other_avatar.save(tmp_path / "b.avatar.safetensors")))
    assert first != second and mark_is_on(rest)  # each visitor's state holds a key of their own
    for frame in frames[:4]:
        shown_first, status, first = handlers.stream(frame, first)
        shown_second, _, second = handlers.stream(frame, second)
    assert "frames/s" in status and mark_is_on(shown_first) and mark_is_on(shown_second)
    assert np.abs(shown_first.astype(int) - shown_second).mean() > 10  # each visitor's own avatar
    assert handlers.recentre(first)[0] == first
    assert handlers.sessions.get(first).calibrating and not handlers.sessions.get(second).calibrating


def test_a_session_keeps_to_the_servers_output_size_limit(avatar: Avatar) -> None:
    with pytest.raises(ValueError, match="over this server's limit of 256"):
        LiveSession(avatar, LiveConfig(output_size=512), limits=Limits(max_output_size=256))
    assert LiveSession(avatar, LiveConfig(output_size=256), limits=Limits(max_output_size=256)).last_image.shape[0] == 256


def test_run_live_prepares_frames_on_a_thread_of_its_own_and_raises_its_sources_error(
        avatar: Avatar, frames: list[np.ndarray]) -> None:
    import threading

    session = LiveSession(avatar, CONFIG)
    prepared_on = []
    real_prepare = session.prepare

    def prepare(frame, captured_at=None):
        prepared_on.append(threading.current_thread().name)
        return real_prepare(frame, captured_at)

    session.prepare = prepare

    def camera():
        yield from frames[:4]
        raise OSError("camera unplugged")

    shown = []
    with pytest.raises(OSError, match="camera unplugged"):
        for out in run_live(camera(), avatar, session=session):
            shown.append(out)
    assert len(shown) == 4 and all(name == "live landmarks+warp" for name in prepared_on)
    assert not [t for t in threading.enumerate() if t.name == "live landmarks+warp"]


def test_the_live_warp_on_a_coarser_spline_grid_shows_the_same_face(avatar: Avatar, frames: list[np.ndarray]) -> None:
    coarse, fine = ([s.image.astype(np.float32) for s in run_live(frames[:10], avatar, replace(CONFIG, spline_grid=grid))]
                    for grid in (LIVE_SPLINE_GRID, 128))
    differences = [np.abs(a - b).mean() for a, b in zip(coarse, fine)]
    assert max(differences) < 1.5  # of 255, on average over the frame
    assert any(d > 0 for d in differences)  # the grid was used
    with pytest.raises(ValueError, match="spline_grid"):
        LiveConfig(spline_grid=4)
