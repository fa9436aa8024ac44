"""``speak``: a photo and a voice (a file, or typed text) -> an mp4 with the voice, the mark on every frame; and
every kind of voice that is no voice ends in a clear message or a result (all sounds made here)."""

from __future__ import annotations

import time
import wave
from pathlib import Path

import cv2
import numpy as np
import pytest
from app_support import tiny_weights
from moviepy.video.io.ffmpeg_reader import ffmpeg_parse_infos
from speech_support import harmonics, needs_espeak, syllables, write_wav

from talking_head.avatar import Avatar
from talking_head.cli import main
from talking_head.errors import InputError
from talking_head.landmarks import get_detector
from talking_head.landmarks.mouth import mouth_opening
from talking_head.limits import Limits
from talking_head.media import iter_video_frames
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import RenderConfig
from talking_head.speech.audio import SAMPLE_RATE
from talking_head.speech.tts import MAX_TEXT_CHARACTERS
from talking_head.watermark import stamp_synthetic

SIZE = 128
CONFIG = RenderConfig(output_size=SIZE)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def pipe(weights: Path) -> TalkingHeadPipeline:
    return TalkingHeadPipeline.from_pretrained(weights, device="cpu", landmark_backend="dlib",
                                               limits=Limits(max_video_seconds=4.0))


@pytest.fixture(scope="module")
def avatar(pipe: TalkingHeadPipeline, synthetic_photos: list[Path]) -> Avatar:
    return pipe.personalize(synthetic_photos[:1], steps=0)


def marked(frame: np.ndarray) -> bool:
    """The mark's letters are there, white (their solid core, which the codec keeps)."""
    letters = stamp_synthetic(np.zeros_like(frame))[..., 0] > 200
    return frame[letters].mean() > 200


def test_a_voice_becomes_a_video_that_speaks_it(pipe: TalkingHeadPipeline, avatar: Avatar, tmp_path: Path) -> None:
    sound, murmurs = syllables(5)
    result = pipe.speak(avatar, tmp_path / "out.mp4", write_wav(tmp_path / "ma.wav", sound),
                        config=RenderConfig(output_size=256))  # dlib, the judge, needs a face this large
    assert result.notes == [] and result.render.num_frames == 50
    infos = ffmpeg_parse_infos(str(result.render.path))
    assert infos["audio_found"] and infos["duration"] == pytest.approx(2.0, abs=0.1)
    frames = list(iter_video_frames(result.render.path))
    assert len(frames) == 50 and all(marked(f) for f in frames)
    shut = judged_openings([frames[int((a + b) / 2 * 25)] for a, b in murmurs])
    vowel = judged_openings([frames[int((b + 0.14) * 25)] for _, b in murmurs])
    assert len(shut) >= 3 and len(vowel) >= 3 and np.median(vowel) > np.median(shut) + 0.1


def judged_openings(frames: list[np.ndarray]) -> list[float]:
    """The judge: the mouth's opening dlib finds afresh on each frame (where it finds a face)."""
    detector = get_detector("dlib")
    return [float(mouth_opening(faces[0].landmarks)) for frame in frames if (faces := detector.detect(frame))]


@needs_espeak
def test_typed_text_is_spoken_into_the_video(pipe: TalkingHeadPipeline, avatar: Avatar, tmp_path: Path) -> None:
    result = pipe.speak(avatar, tmp_path / "text.mp4", text="Hello, world.", config=CONFIG)
    infos = ffmpeg_parse_infos(str(result.render.path))
    assert infos["audio_found"] and 0.5 < infos["duration"] < 3
    assert result.render.num_frames == pytest.approx(infos["duration"] * 25, abs=2)
    with pytest.raises(InputError, match="at most"):
        pipe.speak(avatar, tmp_path / "long.mp4", text="a " * MAX_TEXT_CHARACTERS, config=CONFIG)
    with pytest.raises(InputError, match=r"the text, spoken, is \d+\.\d s long; the limit is 4 s. Shorten it"):
        pipe.speak(avatar, tmp_path / "long.mp4", text="Hello there, how are you? " * 4, config=CONFIG)


def test_sounds_that_are_no_speech_give_a_result_and_a_note(pipe: TalkingHeadPipeline, avatar: Avatar,
                                                              tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    silence = np.zeros(SAMPLE_RATE, np.float32)
    noise = rng.standard_normal(SAMPLE_RATE * 2).astype(np.float32) * 0.1
    chords = np.concatenate([harmonics(0.5, f0, (100, 3000)) + harmonics(0.5, f0 * 1.26, (100, 3000))
                             for f0 in (110, 147, 131, 165)])  # music: sustained notes
    for name, sound, note in (("silence", silence, "no voice was heard"), ("noise", noise, "seldom pauses"),
                              ("music", chords, "seldom pauses")):
        result = pipe.speak(avatar, tmp_path / f"{name}.mp4", write_wav(tmp_path / f"{name}.wav", sound),
                            config=CONFIG)
        assert result.render.path.is_file() and any(note in n for n in result.notes), (name, result.notes)


def test_files_that_are_no_voice_are_refused_clearly(pipe: TalkingHeadPipeline, avatar: Avatar, driver_video: Path,
                                                     tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    silent_video = tmp_path / "silent.mp4"
    writer = cv2.VideoWriter(str(silent_video), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 64))
    for _ in range(10):
        writer.write(np.full((64, 64, 3), 128, np.uint8))
    writer.release()
    for path, message in ((empty, "empty"), (silent_video, "no sound track"), (tmp_path / "nowhere.wav", "not found")):
        with pytest.raises(InputError, match=message):
            pipe.speak(avatar, tmp_path / "out.mp4", path, config=CONFIG)
    with pytest.raises(InputError, match="either"):
        pipe.speak(avatar, tmp_path / "out.mp4", empty, text="hello", config=CONFIG)
    assert not (tmp_path / "out.mp4").exists()
    result = pipe.speak(avatar, tmp_path / "video.mp4", driver_video, config=CONFIG)  # a video's sound is a voice
    assert result.render.num_frames == 30 and "sound track is used" in result.notes[0]


def test_ten_minutes_are_refused_at_once_or_trimmed(pipe: TalkingHeadPipeline, avatar: Avatar, tmp_path: Path) -> None:
    long = tmp_path / "ten_minutes.wav"
    rate = 8000
    with wave.open(str(long), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        tone = (harmonics(1.0, 120, (100, 3000), rate) * 32767).astype("<i2").tobytes()
        out.writeframes(tone * 600)
    began = time.monotonic()
    with pytest.raises(InputError, match=r"600\.0 s long; the limit is 4 s"):
        pipe.speak(avatar, tmp_path / "out.mp4", long, config=CONFIG)
    assert time.monotonic() - began < 5  # refused on the container's word, before decoding it
    trimmed = pipe.speak(avatar, tmp_path / "trimmed.mp4", long, config=RenderConfig(output_size=SIZE, trim=True))
    assert trimmed.render.num_frames == 100 and "trimmed to its first 4 s, the limit" in trimmed.notes
    assert ffmpeg_parse_infos(str(trimmed.render.path))["duration"] == pytest.approx(4.0, abs=0.15)


def test_the_command_speaks_and_bad_input_exits_2(weights: Path, synthetic_photos: list[Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    voice = write_wav(tmp_path / "ma.wav", syllables(2)[0])
    main(["speak", "--photos", str(synthetic_photos[0]), "--audio", str(voice), "--out", str(tmp_path / "o.mp4"),
          "--weights", str(weights), "--output-size", str(SIZE), "--seed", "3"])
    assert "o.mp4: 20 frames at 25 fps" in capsys.readouterr().out
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(SystemExit) as exit_:
        main(["speak", "--photos", str(synthetic_photos[0]), "--audio", str(tmp_path / "empty.wav"),
              "--weights", str(weights)])
    assert exit_.value.code == 2 and "error: audio 'empty.wav' is empty" in capsys.readouterr().err
