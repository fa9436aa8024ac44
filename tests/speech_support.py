"""Sounds the speech tests make for themselves: vowel-like and murmur-like tones, noise, music, silence."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from talking_head.speech.audio import SAMPLE_RATE

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def harmonics(seconds: float, f0: float, band: tuple[float, float], rate: int = SAMPLE_RATE) -> np.ndarray:
    """A voiced sound: the harmonics of ``f0`` inside ``band`` (Hz), at a speaking level (about -20 dB)."""
    t = np.arange(int(seconds * rate)) / rate
    tones = [np.sin(2 * np.pi * k * f0 * t) for k in range(1, int(band[1] / f0) + 1) if band[0] <= k * f0 <= band[1]]
    signal = np.sum(tones, axis=0)
    return (0.1 * signal / np.abs(signal).max()).astype(np.float32)


def syllables(count: int, rate: int = SAMPLE_RATE) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """``count`` times a "ma": a murmur (the harmonics under 400 Hz only: lips shut, the voice through the nose),
    then a vowel (harmonics up to 3 kHz). The murmurs' (start, end) seconds too."""
    parts, murmurs, time = [], [], 0.0
    for _ in range(count):
        parts += [harmonics(0.12, 120, (100, 400), rate), harmonics(0.28, 120, (100, 3000), rate)]
        murmurs.append((time, time + 0.12))
        time += 0.4
    return np.concatenate(parts), murmurs


def write_wav(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path
