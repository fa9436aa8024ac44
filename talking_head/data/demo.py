"""Demo media the project makes itself (licence-clean): synthetic driving videos with a sound track.

Used for the bundled examples and by tests that need a real mp4 with audio.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from talking_head.data.synthetic import render_video
from talking_head.media import VideoSink


def write_tone(path: str | Path, seconds: float, rate: int = 16000) -> Path:
    """A speech-like test sound (a 150 Hz buzz, amplitude-modulated at syllable rate) as a WAV file."""
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) ** 2 / 2
    signal = envelope * (np.sin(2 * np.pi * 150 * t) + 0.3 * np.sin(2 * np.pi * 450 * t))
    samples = (signal / np.abs(signal).max() * 0.6 * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(samples.tobytes())
    return Path(path)


def write_driver_video(path: str | Path, identity_id: int = 1, num_frames: int = 50, fps: float = 25.0,
                       image_size: int = 256, with_audio: bool = True, seed: int = 0) -> Path:
    """Render a synthetic talking head clip to mp4 (frames + an optional sound track)."""
    path = Path(path)
    frames, _ = render_video(identity_id, 0, num_frames, image_size, seed)
    audio = write_tone(path.with_suffix(".wav"), num_frames / fps) if with_audio else None
    try:
        with VideoSink(path, image_size, image_size, fps, audio_from=audio) as sink:
            for frame in frames:
                sink.write(frame)
    finally:
        if audio is not None:
            audio.unlink(missing_ok=True)
    return path
