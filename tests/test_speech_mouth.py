"""Speech -> the mouth's motion: features per video frame read as a stream, the lips shut on b, p and m (from the
voice alone, and exactly where typed text's phones say), rounded on o and u."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from speech_support import harmonics, needs_espeak, syllables, write_wav

from talking_head.errors import InputError
from talking_head.speech.audio import SAMPLE_RATE, iter_audio, probe_audio
from talking_head.speech.features import SPEECH_FPS, frame_windows, voice_features
from talking_head.speech.tracks import WIDEST_OPENING, voice_tracks
from talking_head.speech.visemes import BILABIALS, Phone, frames_of, phone_rounding, with_phones

CLOSED = 0.1  # eye distances: the acceptance's threshold


def test_frames_cover_the_sound_however_it_is_chunked() -> None:
    samples = np.random.default_rng(0).standard_normal(int(1.3 * SAMPLE_RATE)).astype(np.float32) * 0.1
    whole = voice_features([samples])
    chunked = voice_features(np.array_split(samples, 7))
    assert len(whole.lip_db) == int(np.ceil(1.3 * SPEECH_FPS))
    np.testing.assert_allclose(chunked.lip_db, whole.lip_db, atol=1e-4)
    windows = list(frame_windows([np.arange(SAMPLE_RATE, dtype=np.float32)]))
    middles = [w[len(w) // 2] for w in windows[1:-1]]
    assert np.allclose(middles, [(i + 0.5) * SAMPLE_RATE / SPEECH_FPS for i in range(1, len(windows) - 1)], atol=1)
    odd = np.ones(SAMPLE_RATE + 1, np.float32)  # a frame's worth and a sample: its last middle lies past the end
    short = list(frame_windows(np.array_split(odd, 3), window=0.025))
    assert len(short) == SPEECH_FPS + 1 and {len(w) for w in short} == {400}


def test_the_mouth_opens_on_vowels_and_shuts_on_a_murmur() -> None:
    sound, murmurs = syllables(6)
    tracks = voice_tracks(voice_features([sound]))
    vowels = [tracks.opening[int((end + 0.14) * SPEECH_FPS)] for _, end in murmurs]
    shut = [tracks.opening[int((start + end) / 2 * SPEECH_FPS)] for start, end in murmurs]
    assert min(vowels) > 0.6 * WIDEST_OPENING
    assert max(shut) < CLOSED


def test_silence_keeps_the_mouth_shut() -> None:
    quiet = np.random.default_rng(1).standard_normal(SAMPLE_RATE).astype(np.float32) * 1e-4
    assert not voice_tracks(voice_features([quiet])).opening.any()


def test_rounding_follows_a_low_second_formant() -> None:
    """An "oo" (energy under 1 kHz) against an "ee" (energy up high too), alternating."""
    parts = [harmonics(0.4, 120, (100, 900)), harmonics(0.4, 120, (100, 3000))] * 3
    tracks = voice_tracks(voice_features([np.concatenate(parts)]))
    oo = [tracks.rounding[int((0.8 * i + 0.2) * SPEECH_FPS)] for i in range(3)]
    ee = [tracks.rounding[int((0.8 * i + 0.6) * SPEECH_FPS)] for i in range(3)]
    assert min(oo) > 0.5 > max(ee)


def test_audio_files_are_checked(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        probe_audio(empty)
    text = tmp_path / "notes.wav"
    text.write_text("not a sound at all\n" * 50)
    with pytest.raises(InputError, match="could not be read|no sound"):
        probe_audio(text)
    voice = write_wav(tmp_path / "voice.wav", syllables(3, 22050)[0], 22050)
    assert probe_audio(voice).duration == pytest.approx(1.2, abs=0.05)
    assert sum(len(c) for c in iter_audio(voice)) == pytest.approx(1.2 * SAMPLE_RATE, abs=50)
    assert sum(len(c) for c in iter_audio(voice, max_seconds=0.5)) == pytest.approx(0.5 * SAMPLE_RATE, abs=50)


def test_phones_shut_and_round_the_lips() -> None:
    loud = voice_tracks(voice_features([harmonics(1.0, 120, (100, 3000))]))
    assert loud.opening[5:20].min() > 0.5 * WIDEST_OPENING
    phones = [Phone("a", 0.0, 0.3), Phone("m", 0.3, 0.36), Phone("u:", 0.36, 0.8), Phone("f", 0.8, 1.0)]
    said = with_phones(loud, phones)
    assert said.opening[list(frames_of(phones[1], SPEECH_FPS, len(said)))].max() == 0.0
    assert said.opening[frames_of(phones[3], SPEECH_FPS, len(said))].max() < CLOSED
    assert said.rounding[int(0.6 * SPEECH_FPS)] > 0.8
    assert said.rounding[int(0.1 * SPEECH_FPS)] < 0.2
    assert phone_rounding("oU") == 1.0 and phone_rounding("aU") == 0.6 and phone_rounding("i:") == 0.0
    assert list(frames_of(Phone("p", 0.401, 0.41), SPEECH_FPS, 100)) == [10]  # shorter than a frame: still one


@needs_espeak
def test_typed_text_gives_speech_with_phone_times(tmp_path: Path) -> None:
    from talking_head.speech.tts import speak_text

    phones = speak_text("Bob bought a map of Peru.", tmp_path / "bob.wav")
    names = [p.name for p in phones]
    assert names.count("b") >= 2 and "m" in names and "p" in names
    assert all(a.end <= b.start + 1e-9 for a, b in itertools.pairwise(phones))
    assert probe_audio(tmp_path / "bob.wav").duration == pytest.approx(phones[-1].end, abs=0.3)
    with pytest.raises(InputError, match="type something"):
        speak_text("   ", tmp_path / "none.wav")
    with pytest.raises(InputError, match="no voice"):
        speak_text("hello", tmp_path / "none.wav", voice="no-such-voice")


@needs_espeak
def test_the_voice_alone_shuts_the_lips_on_most_bilabials(tmp_path: Path) -> None:
    """Read from the sound only (the phones serve as the judge): espeak-ng's b, p and m."""
    from talking_head.speech.tts import speak_text

    closed = []
    for index, text in enumerate(["Maybe Ben will bring both of the maps home by May.",
                                  "Put the lamp back above the bed, Mabel.", "My mother made apple pie and plum jam."]):
        phones = speak_text(text, tmp_path / f"{index}.wav")
        tracks = voice_tracks(voice_features(iter_audio(tmp_path / f"{index}.wav")))
        closed += [tracks.opening[int((p.start + p.end) / 2 * SPEECH_FPS)] < CLOSED for p in phones
                   if p.name in BILABIALS]
    assert len(closed) >= 20 and np.mean(closed) >= 0.7
