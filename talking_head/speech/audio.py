"""A voice file -> mono samples at ``SAMPLE_RATE``, decoded by ffmpeg as a stream, checked first.

Any file ffmpeg reads with a sound track will do (wav, mp3, ogg, m4a, a browser's webm recording, or a
video's sound); the checks say in words what is wrong with one that will not: empty, no sound track,
longer than the limit.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from moviepy.config import FFMPEG_BINARY
from moviepy.video.io.ffmpeg_reader import ffmpeg_parse_infos

from talking_head.errors import InputError

#: Samples a second the voice is analysed at: speech's cues for the lips lie below 4 kHz.
SAMPLE_RATE = 16000
#: Samples read from ffmpeg at once (a second): memory stays flat however long the file.
CHUNK_SAMPLES = SAMPLE_RATE


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    duration: float  # seconds, as the container states it (the decoded length is what counts)
    has_video: bool  # a video file given as the voice: its sound track is used


def probe_audio(path: str | Path) -> AudioInfo:
    """The container's facts, or an :class:`InputError` saying why the file is no voice."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"audio {path.name!r} was not found")
    if path.stat().st_size == 0:
        raise InputError(f"audio {path.name!r} is empty (0 bytes)")
    try:
        infos = ffmpeg_parse_infos(str(path))
    except (OSError, KeyError, IndexError, ValueError, TypeError, AttributeError) as error:
        raise InputError(f"audio {path.name!r} could not be read: it is not a sound file or it is damaged") from error
    if not infos.get("audio_found"):
        what = "a picture or a video without sound" if infos.get("video_found") else "not a sound file"
        raise InputError(f"audio {path.name!r} has no sound track ({what}): give a recording of a voice")
    return AudioInfo(path, float(infos.get("duration") or 0.0), bool(infos.get("video_found")))


def iter_audio(path: str | Path, max_seconds: float | None = None) -> Iterator[np.ndarray]:
    """The file's first sound track as mono float32 chunks in [-1, 1] at ``SAMPLE_RATE``, its first
    ``max_seconds`` when given; an :class:`InputError` if nothing could be decoded."""
    command = [FFMPEG_BINARY, "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:a:0", "-vn",
               "-ac", "1", "-ar", str(SAMPLE_RATE), *(["-t", f"{max_seconds:.3f}"] if max_seconds else []),
               "-f", "s16le", "-"]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    decoded = 0
    try:
        while data := process.stdout.read(CHUNK_SAMPLES * 2):
            chunk = np.frombuffer(data[: len(data) // 2 * 2], np.int16).astype(np.float32) / 32768.0
            decoded += len(chunk)
            yield chunk
    finally:
        process.kill()
        process.stdout.close()
        process.wait()
    if decoded == 0:
        raise InputError(f"audio {Path(path).name!r} could not be decoded: it is damaged or holds no sound")
