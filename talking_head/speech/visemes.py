"""Phones -> what the lips must do: close on b, p and m, nearly close on f and v, round on o, u, w (and the
lips' push of sh, ch, j, zh); where typed text was spoken by ``tts``, its phones and their times are known.

Phone names are espeak-ng's (Kirshenbaum-like ASCII: ``b``, ``O:``, ``oU``, ``tS``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter1d

from talking_head.speech.tracks import ROUNDING_SIGMA_FRAMES, MouthTracks

#: Phones said with the lips shut.
BILABIALS = frozenset({"b", "p", "m"})
#: Phones said with the lower lip against the teeth: the mouth all but closed (eye distances).
LABIODENTALS = frozenset({"f", "v"})
LABIODENTAL_OPENING = 0.03
#: Rounding by a phone's first letters (espeak-ng names); the longest prefix that matches wins.
ROUNDING_BY_PREFIX = {"o": 1.0, "O": 1.0, "u": 1.0, "U": 0.8, "w": 1.0, "0": 0.6, "aU": 0.6, "OI": 0.8,
                      "S": 0.6, "Z": 0.6, "tS": 0.6, "dZ": 0.6, "r": 0.3}


@dataclass(frozen=True)
class Phone:
    name: str
    start: float  # seconds
    end: float


def phone_rounding(name: str) -> float:
    """How rounded the lips are on a phone, 0 .. 1 (``ROUNDING_BY_PREFIX``)."""
    matches = [prefix for prefix in ROUNDING_BY_PREFIX if name.startswith(prefix)]
    return ROUNDING_BY_PREFIX[max(matches, key=len)] if matches else 0.0


def frames_of(phone: Phone, fps: float, count: int) -> range:
    """The frames whose middles fall inside ``phone``, at least the one nearest its middle."""
    first, last = int(np.ceil(phone.start * fps - 0.5)), int(np.ceil(phone.end * fps - 0.5))
    if last <= first:
        first = int(np.floor((phone.start + phone.end) / 2 * fps))
        last = first + 1
    return range(max(0, first), min(count, last))


def with_phones(tracks: MouthTracks, phones: list[Phone]) -> MouthTracks:
    """``tracks`` (read from the voice) corrected by the phones said: shut on every bilabial, almost on f and v,
    rounded as each phone is (smoothed as ``tracks.mouth_rounding``)."""
    opening, rounding = tracks.opening.copy(), np.zeros(len(tracks))
    for phone in phones:
        frames = frames_of(phone, tracks.fps, len(tracks))
        rounding[frames.start:frames.stop] = phone_rounding(phone.name)
        if phone.name in BILABIALS:
            opening[frames.start:frames.stop] = 0.0
        elif phone.name in LABIODENTALS:
            opening[frames.start:frames.stop] = np.minimum(opening[frames.start:frames.stop], LABIODENTAL_OPENING)
    rounding = np.clip(gaussian_filter1d(rounding, ROUNDING_SIGMA_FRAMES), 0.0, 1.0)
    return replace(tracks, opening=opening, rounding=rounding)
