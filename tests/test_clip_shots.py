"""A clip as K shots (``talking_head.clip_shots``): on synthetic clips with known landmarks the chosen frames hold
the clip's widest mouth opening and its largest head turn (evenly spaced frames do not), blurred frames are
skipped, and bad clips (one frame, no face, a still image, a long clip) end in a message or a result."""

from __future__ import annotations

import tracemalloc
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from talking_head.clip_shots import ClipShotsConfig, choose_shots, is_video
from talking_head.data.synthetic import make_person, video_motion
from talking_head.data.synthetic_face import expression_layout, rotation_matrices
from talking_head.data.synthetic_render import make_camera, render
from talking_head.errors import InputError
from talking_head.evaluate_clip import spread
from talking_head.landmarks.detect import get_detector
from talking_head.landmarks.mouth import mouth_opening
from talking_head.limits import Limits
from talking_head.media import VideoSink

SIDE = 160
FRAMES = 40
OPEN_AT, TURN_AT = 9, 30  # off the evenly spaced frames of any small K (0, 13, 26, 39 for K = 4)


def write_clip(path: Path, frames, fps: float = 25.0) -> Path:
    with VideoSink(path, SIDE, SIDE, fps) as sink:
        for frame in frames:
            sink.write(frame)
    return path


def burst(peak: int, frames: int, height: float) -> np.ndarray:
    """A bump ``height`` tall at ``peak``, two frames either side."""
    return height * np.exp(-((np.arange(frames) - peak) / 1.5) ** 2)


def talking_clip(frames: int = FRAMES, identity: int = 33) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic person talking half-open, looking about the camera, except for one wide-open mouth at
    ``OPEN_AT`` and one head turn (30 degrees) at ``TURN_AT``: (frames, exact landmarks, yaw in radians)."""
    person = make_person(identity)
    motion = video_motion(identity, 0, frames)
    motion = replace(motion, yaw=0.2 * motion.yaw + burst(TURN_AT, frames, np.radians(30)),
                     pitch=0.3 * motion.pitch, roll=0.3 * motion.roll,
                     mouth=np.minimum(0.45 * motion.mouth + burst(OPEN_AT, frames, 1.0), 1.0),
                     rounding=np.zeros(frames))  # about pose and opening: dlib read a rounded still mouth apart in two encodings
    camera = make_camera(person, motion, rotation_matrices(motion.yaw, motion.pitch, motion.roll), SIDE)
    video, landmarks = render(person, motion, expression_layout(person, motion), camera, SIDE)
    return video, landmarks, motion.yaw


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    video, landmarks, yaw = talking_clip()
    return write_clip(tmp_path_factory.mktemp("clip") / "me.mp4", video), landmarks, yaw


@pytest.fixture(scope="module")
def detector():
    return get_detector("dlib")


def covers_extremes(indices: list[int], landmarks: np.ndarray, yaw: np.ndarray) -> tuple[bool, bool]:
    """Whether ``indices`` hold a frame with 90 % of the widest opening, and one with 90 % of the largest turn."""
    opening, turn = mouth_opening(landmarks), np.abs(yaw)
    return (bool(opening[indices].max() >= 0.9 * opening.max()), bool(turn[indices].max() >= 0.9 * turn.max()))


@pytest.mark.parametrize("k", [2, 4, 8])
def test_the_widest_opening_and_the_largest_turn_are_chosen(clip, detector, k):
    path, landmarks, yaw = clip
    result = choose_shots(path, detector, ClipShotsConfig(shots=k))
    indices = [shot.index for shot in result.shots]
    assert len(indices) == len(set(indices)) and 2 <= len(indices) <= k
    assert covers_extremes(indices, landmarks, yaw) == (True, True), result.describe()
    # The measure can fail: evenly spaced frames (what evaluate --clip takes) miss both.
    assert covers_extremes(spread(list(range(FRAMES)), k), landmarks, yaw) == (False, False)
    reasons = " ".join(shot.reason for shot in result.shots)
    assert "widest mouth opening" in reasons and "largest head turn" in reasons
    assert f"{OPEN_AT / 25:.2f} s" in result.describe() or f"{(OPEN_AT + 1) / 25:.2f} s" in result.describe() \
        or f"{(OPEN_AT - 1) / 25:.2f} s" in result.describe()
    for shot in result.shots:
        assert shot.frame.shape == (SIDE, SIDE, 3) and shot.face.landmarks.shape == (68, 2)
        assert shot.time == pytest.approx(shot.index / 25)


def test_a_blurred_frame_is_skipped_for_a_sharp_neighbour(tmp_path, detector):
    """The widest-open frame and its neighbours but one are motion-blurred: the sharp one is taken."""
    video, _, _ = talking_clip()
    blurred = video.copy()
    kernel = np.full((1, 9), 1 / 9)  # a horizontal smear, as a fast head move leaves
    for i in range(OPEN_AT - 2, OPEN_AT + 3):
        if i != OPEN_AT + 1:
            blurred[i] = cv2.filter2D(video[i], -1, kernel)
    result = choose_shots(write_clip(tmp_path / "blur.mp4", blurred), detector, ClipShotsConfig(shots=4))
    indices = {shot.index for shot in result.shots}
    assert OPEN_AT + 1 in indices and not indices & {OPEN_AT - 2, OPEN_AT - 1, OPEN_AT, OPEN_AT + 2}


def test_one_frame_clip_gives_its_frame(tmp_path, detector, clip):
    video, _, _ = talking_clip(frames=1)
    result = choose_shots(write_clip(tmp_path / "one.mp4", video), detector, ClipShotsConfig(shots=8))
    assert len(result.shots) == 1 and result.shots[0].index == 0
    assert any("only frame" in note for note in result.notes)


def test_still_image_as_video_gives_one_shot(tmp_path, detector):
    video, _, _ = talking_clip(frames=1)
    result = choose_shots(write_clip(tmp_path / "still.mp4", [video[0]] * 30), detector, ClipShotsConfig(shots=8))
    assert len(result.shots) == 1
    assert any("does not move" in note for note in result.notes)


def test_faceless_clip_is_refused(tmp_path, detector):
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8), (0, 0), 3) for _ in range(20)]
    with pytest.raises(InputError, match="a face was found in 0 of its 20 frames"):
        choose_shots(write_clip(tmp_path / "noface.mp4", frames), detector)


def test_face_lost_most_of_the_time_is_refused(tmp_path, detector):
    video, _, _ = talking_clip(frames=10)
    frames = list(video) + [np.full((SIDE, SIDE, 3), 90, np.uint8)] * 20
    with pytest.raises(InputError, match=r"a face was found in 1\d of its 30 frames"):
        choose_shots(write_clip(tmp_path / "lost.mp4", frames), detector)


def test_two_people_are_refused(tmp_path, detector):
    a, _, _ = talking_clip(frames=12, identity=33)
    b, _, _ = talking_clip(frames=12, identity=30)
    half = lambda v: cv2.resize(v, (SIDE // 2, SIDE // 2))
    frames = [np.pad(np.concatenate([half(x), half(y)], 1), ((40, 40), (0, 0), (0, 0)), mode="edge")
              for x, y in zip(a, b)]
    with pytest.raises(InputError, match="two or more faces"):
        choose_shots(write_clip(tmp_path / "two.mp4", frames), detector)


def test_memory_is_flat_in_the_clip_length(tmp_path, detector):
    """Twice and eight times the same talking: the longer clip keeps no more frames (candidates are bounded), and
    the widest opening is still taken."""
    video, landmarks, _ = talking_clip(frames=20)
    opening = mouth_opening(landmarks)
    peaks = []
    for repeats in (2, 8):
        path = write_clip(tmp_path / f"long{repeats}.mp4", list(video) * repeats)
        tracemalloc.start()
        result = choose_shots(path, detector, ClipShotsConfig(shots=4, candidates=6))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert result.frames == 20 * repeats and len(result.shots) >= 2
        # The widest opening outlives the evictions of a candidate set much smaller than the clip.
        assert opening[[shot.index % 20 for shot in result.shots]].max() >= 0.9 * opening.max()
    assert peaks[1] < 1.3 * peaks[0] + 200_000, peaks  # 4x the frames, (almost) the same peak


def test_a_clip_over_the_length_limit_is_read_up_to_it(clip, detector):
    path, _, _ = clip
    result = choose_shots(path, detector, ClipShotsConfig(shots=2), Limits(max_video_seconds=1.0))
    assert result.frames == 25 and any("first 1 s" in note for note in result.notes)


def test_shots_over_the_limit_are_refused(clip, detector):
    with pytest.raises(InputError, match="at most 4 shots"):
        choose_shots(clip[0], detector, ClipShotsConfig(shots=5), Limits(max_shots=4))


def test_videos_are_told_from_photos():
    assert is_video("me.MP4") and is_video(Path("a/b.webm")) and not is_video("me.jpg")
    assert not is_video(np.zeros((4, 4, 3), np.uint8))


# ------------------------------------------------------------------------------ wired in: pipeline and CLI
@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    import torch

    from talking_head.config import ModelConfig
    from talking_head.models.talking_head_model import TalkingHeadModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_weights")
    TalkingHeadModel(ModelConfig.named("tiny")).save_pretrained(folder)
    return folder


def test_animate_with_a_clip_as_the_photos(clip, tiny_weights, driver_video, tmp_path, capsys):
    from talking_head.cli import main
    from talking_head.media import probe_video

    main(["animate", "--photos", str(clip[0]), "--shots", "4", "--driver", str(driver_video), "--out",
          str(tmp_path / "out.mp4"), "--output-size", "64", "--weights", str(tiny_weights), "--landmarks", "dlib",
          "--device", "cpu", "--save", str(tmp_path / "me.avatar.safetensors")])
    assert probe_video(tmp_path / "out.mp4").num_frames == 30
    err = capsys.readouterr().err
    assert "me.mp4: 4 shots from 40 frames" in err and "widest mouth opening" in err and "largest head turn" in err
    from talking_head.avatar import Avatar

    assert Avatar.load(tmp_path / "me.avatar.safetensors", "cpu").info["k"] == 4


def test_a_clip_beside_photos_and_the_shot_limit(clip, tiny_weights, synthetic_photos):
    from talking_head.pipeline import TalkingHeadPipeline

    pipe = TalkingHeadPipeline.from_pretrained(str(tiny_weights), device="cpu", landmark_backend="dlib",
                                               limits=Limits(max_shots=5))
    shots = pipe.prepare_shots([synthetic_photos[0], clip[0]], shots=4)
    assert len(shots.crops) == 5 and shots.bank_crops.shape[0] == 5
    assert any(note.startswith("me.mp4: 4 shots") for note in shots.notes)
    with pytest.raises(InputError, match="6 shots from the photos and clips given; at most 5"):
        pipe.prepare_shots([*synthetic_photos[:2], clip[0]], shots=4)


def test_a_bad_clip_ends_the_command_with_a_message(tmp_path, tiny_weights, driver_video, capsys):
    from talking_head.cli import main

    bad = write_clip(tmp_path / "noface.mp4", [np.full((SIDE, SIDE, 3), 120, np.uint8)] * 10)
    with pytest.raises(SystemExit) as exit_:
        main(["personalize", "--photos", str(bad), "--save", str(tmp_path / "x.safetensors"), "--weights",
              str(tiny_weights), "--landmarks", "dlib", "--device", "cpu"])
    assert exit_.value.code == 2
    assert "error: noface.mp4: a face was found in 0 of its 10 frames" in capsys.readouterr().err


def test_evaluate_clip_can_take_its_shots_as_a_clip_among_photos_would(clip, tiny_weights):
    """``evaluate --clip --shot-choice cover``: the first half's shots by coverage, not spread evenly."""
    from talking_head.evaluate_clip import pick_shots
    from talking_head.pipeline import TalkingHeadPipeline

    pipe = TalkingHeadPipeline.from_pretrained(str(tiny_weights), device="cpu", landmark_backend="dlib")
    half = FRAMES // 2
    even = pick_shots(clip[0], pipe, list(range(half)), half, 2, "even")
    chosen = pick_shots(clip[0], pipe, list(range(half)), half, 2, "cover")
    cover = [shot.index for shot in chosen.shots]
    assert even == [0, half - 1]
    assert len(cover) == 2 and max(cover) < half and min(abs(i - OPEN_AT) for i in cover) <= 1
    assert len(pipe.prepare_shots([chosen]).crops) == 2  # with the tracker's landmarks: no second search
