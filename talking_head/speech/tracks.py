"""Voice features -> the mouth's motion per video frame: its opening and its rounding.

The opening follows the loudness in the lips' band (``features.LIP_BAND``) against its own peak nearby,
not against the whole file's: a syllable's vowel opens the mouth whether it is said loudly or not, and the
consonants between vowels (b, p, m above all) fall ``CONTRAST_DB`` under it and close it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, maximum_filter1d

from talking_head.speech.features import SILENCE_DB, VoiceFeatures

#: The widest opening (inner lips' gap, in eye distances) a loud vowel gets: a talking mouth, not a yawn.
WIDEST_OPENING = 0.3
#: How far (dB) under its local peak the lips' band has to fall for the mouth to close: on the 10 sentences the
#: settings were chosen on, 15 dB shut it at 88 % of the bilabials (r 0.84 with the energy envelope), 18 at 87 %
#: (0.86), 21 at 78-84 %; the window's length (25-40 ms) changed nothing that mattered.
CONTRAST_DB = 15.0
#: The span (seconds) a frame's local peak is taken over, centred on it: about two syllables.
PEAK_SECONDS = 0.6
#: A local peak counts as at least the file's loud frames (95th percentile) less this (dB): in a pause the
#: mouth closes instead of opening on the room's noise.
PEAK_FLOOR_DB = 12.0
#: Rounding is smoothed over this many frames (Gaussian sigma): the lips round ahead of an "o" and stay so.
ROUNDING_SIGMA_FRAMES = 1.5


@dataclass(frozen=True)
class MouthTracks:
    """The mouth per video frame: (T,) arrays."""

    opening: np.ndarray  # inner lips' gap in eye distances, 0 closed
    rounding: np.ndarray  # 0 .. 1: corners drawn in, lips pushed out (o, u, w)
    fps: float

    def __len__(self) -> int:
        return len(self.opening)


def mouth_opening(features: VoiceFeatures) -> np.ndarray:
    """(T,) opening in eye distances: the lips' band's loudness against its local peak (module docstring)."""
    db = features.lip_db
    if not len(db) or np.percentile(db, 95) < SILENCE_DB:
        return np.zeros(len(db))
    span = max(1, round(PEAK_SECONDS * features.fps) | 1)
    peak = np.maximum(maximum_filter1d(db, span), np.percentile(db, 95) - PEAK_FLOOR_DB)
    opening = np.clip((db - (peak - CONTRAST_DB)) / CONTRAST_DB, 0.0, 1.0) * WIDEST_OPENING
    return np.where(db < SILENCE_DB, 0.0, opening)


def mouth_rounding(features: VoiceFeatures, opening: np.ndarray) -> np.ndarray:
    """(T,) rounding in [0, 1] from the spectral tilt of the voiced frames (those with the mouth open): 0 at the
    voice's median tilt, 1 at its 90th percentile and above."""
    voiced = opening > 0.1 * WIDEST_OPENING
    if voiced.sum() < 2:
        return np.zeros(len(opening))
    middle, high = np.percentile(features.tilt_db[voiced], [50, 90])
    rounding = np.where(voiced, np.clip((features.tilt_db - middle) / max(high - middle, 1e-6), 0.0, 1.0), 0.0)
    return np.clip(gaussian_filter1d(rounding, ROUNDING_SIGMA_FRAMES), 0.0, 1.0)


def voice_tracks(features: VoiceFeatures) -> MouthTracks:
    """The mouth's motion read from a voice alone (an uploaded or recorded file)."""
    opening = mouth_opening(features)
    return MouthTracks(opening, mouth_rounding(features, opening), features.fps)
