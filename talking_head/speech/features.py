"""What the lips can be read from in a voice, per video frame: its loudness in the voice's band, its
loudness over all frequencies (the energy envelope), and its spectral tilt.

Why these (measured on espeak-ng speech with known phone times, docs/speak.md): the lips close on b, p
and m, but a voiced b and a nasal m still sound, low (the voice bar, the nasal murmur, below ~400 Hz);
what falls silent there is the band of the vowels' formants. Loudness in 500-2500 Hz, against its own
peak over the last and next 0.3 s, was under the closure threshold at 88 % of the bilabials' middles
(10 sentences, 82 bilabials), the whole band's loudness at 18 %. Rounded vowels (o, u, w) pull the second
formant down, so their energy leans below ~1200 Hz: the tilt (low band over high band) follows rounding, if
weakly (r 0.24 against the rounded phones; Praat's F2 reached 0.31, not worth a dependency).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from talking_head.speech.audio import SAMPLE_RATE

#: Video frames a second of a spoken result (the synthetic drivers' and most cameras' rate).
SPEECH_FPS = 25.0
#: Each frame's analysis window (seconds), centred on the frame's middle.
WINDOW_SECONDS = 0.04
#: (low, high) Hz of the bands: the lips' band, and the two halves the tilt compares.
LIP_BAND = (500.0, 2500.0)
TILT_BANDS = ((250.0, 1200.0), (1200.0, 3000.0))
#: Loudness (dB of the mean square, a full-scale sine -3 dB) under which a frame counts as silent, whatever the
#: rest of the file does (a quiet room's recording sits near -60 in these bands).
SILENCE_DB = -55.0


@dataclass(frozen=True)
class VoiceFeatures:
    """Per video frame (T,) arrays, dB re full scale."""

    lip_db: np.ndarray  # loudness in ``LIP_BAND``
    energy_db: np.ndarray  # loudness of the whole spectrum: the energy envelope
    tilt_db: np.ndarray  # low tilt band over high, dB: higher for rounded vowels
    fps: float

    @property
    def seconds(self) -> float:
        return len(self.lip_db) / self.fps


def frame_windows(chunks: Iterable[np.ndarray], fps: float = SPEECH_FPS, window: float = WINDOW_SECONDS
                  ) -> Iterator[np.ndarray]:
    """A window of samples per video frame, centred on the frame's middle (zeros beyond the ends); a frame
    is given for every started ``1 / fps`` of sound. Reads ``chunks`` as a stream."""
    size = round(window * SAMPLE_RATE)
    buffer, start, index, total = np.zeros(size // 2, np.float32), -(size // 2), 0, 0  # buffer[0] is sample `start`
    for chunk in chunks:
        buffer, total = np.concatenate([buffer, chunk]), total + len(chunk)
        while (first := round((index + 0.5) * SAMPLE_RATE / fps) - size // 2) + size <= start + len(buffer):
            yield buffer[first - start:first - start + size]
            index += 1
            buffer, start = buffer[first - start:], first
    buffer = np.concatenate([buffer, np.zeros(size + int(np.ceil(SAMPLE_RATE / fps)), np.float32)])  # the last middle
    while index < int(np.ceil(total * fps / SAMPLE_RATE - 1e-9)):
        first = round((index + 0.5) * SAMPLE_RATE / fps) - size // 2
        yield buffer[first - start:first - start + size]
        index += 1


def band_db(spectrum: np.ndarray, frequencies: np.ndarray, band: tuple[float, float]) -> float:
    """Power in ``band`` of one frame's power spectrum, in dB."""
    inside = (frequencies >= band[0]) & (frequencies < band[1])
    return float(10 * np.log10(spectrum[inside].sum() + 1e-10))


def voice_features(chunks: Iterable[np.ndarray], fps: float = SPEECH_FPS) -> VoiceFeatures:
    """The features of a voice given as chunks of samples at ``SAMPLE_RATE`` (see ``audio.iter_audio``)."""
    rows = []
    taper = None
    for samples in frame_windows(chunks, fps):
        if taper is None:
            taper = np.hanning(len(samples)).astype(np.float32)
            frequencies = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
            scale = 2.0 / float(np.sum(taper ** 2) * len(samples))  # mean square: a full-scale sine is -3 dB
        spectrum = np.abs(np.fft.rfft(samples * taper)) ** 2 * scale
        low, high = (band_db(spectrum, frequencies, band) for band in TILT_BANDS)
        rows.append((band_db(spectrum, frequencies, LIP_BAND), band_db(spectrum, frequencies, (0, SAMPLE_RATE)),
                     low - high))
    lip, energy, tilt = np.asarray(rows, np.float64).reshape(-1, 3).T
    return VoiceFeatures(lip, energy, tilt, fps)
