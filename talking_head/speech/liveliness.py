"""A head that lives while it speaks: blinks, a small drifting head pose, brows and a nod on emphasis.

All of it is drawn from one seed (the same voice and seed give the same video) and none is taken from a
recorded clip. Emphasis is where the voice is louder than it has been over the last couple of seconds: a
stressed syllable; the brows rise a little and the head dips with it, as speakers do (the "beat" gesture).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, uniform_filter1d

from talking_head.options import option

#: One blink's closure over its frames at 25 fps (about 0.2 s: the lid falls fast and rises slower).
BLINK_SHAPE = np.array([0.5, 1.0, 0.9, 0.5, 0.2])
#: Loudness above the running mean (dB) counted as full emphasis.
EMPHASIS_DB = 6.0
#: A full emphasis nods the head by this share of ``head_degrees``.
NOD_SHARE = 0.8
#: Frames within this many dB of the voice's loud ones (95th percentile) count as sounding.
SOUNDING_DB = 25.0
#: The running mean's span (seconds) emphasis is measured against.
EMPHASIS_CONTEXT_SECONDS = 2.0


@dataclass(frozen=True)
class LivelinessConfig:
    seed: int = option(0, "seed of the blinks and the head's drift (same voice and seed: same video)")
    blinks_per_minute: float = option(17.0, "mean blink rate (people blink 15-20 times a minute when talking)")
    head_degrees: float = option(2.5, "how far the head drifts (degrees of turn and nod, standard deviation)")
    emphasis: float = option(1.0, "how much brows and nod follow the voice's emphasis (0: not at all)")


@dataclass(frozen=True)
class HeadTracks:
    """Per video frame (T,) arrays."""

    blink: np.ndarray  # 0 open .. 1 shut
    brows: np.ndarray  # 0 .. 1 raised
    yaw: np.ndarray  # radians
    pitch: np.ndarray  # radians, positive: chin down
    roll: np.ndarray  # radians


def blinks(count: int, fps: float, per_minute: float, rng: np.random.Generator) -> np.ndarray:
    """(count,) lid closure: blinks at gamma-distributed intervals (never closer than a second), mean rate
    ``per_minute``."""
    closure, time = np.zeros(count), rng.uniform(0.5, 2.5)
    mean_gap = 60.0 / max(per_minute, 1e-6)
    shape = np.interp(np.arange(0, len(BLINK_SHAPE), 25.0 / fps), np.arange(len(BLINK_SHAPE)), BLINK_SHAPE)
    while (start := int(time * fps)) < count:
        part = shape[: count - start]
        closure[start:start + len(part)] = np.maximum(closure[start:start + len(part)], part)
        time += max(1.0, rng.gamma(4.0, mean_gap / 4.0))
    return closure


def emphasis(energy_db: np.ndarray, fps: float) -> np.ndarray:
    """(T,) 0 .. 1: how much louder each frame is than the voice's running mean over its sounding frames (pauses
    and closures left out: they would make every vowel an emphasis)."""
    if not len(energy_db):
        return np.zeros(0)
    sounding = (energy_db > np.percentile(energy_db, 95) - SOUNDING_DB).astype(np.float64)
    span = max(1, int(EMPHASIS_CONTEXT_SECONDS * fps))
    weight = uniform_filter1d(sounding, span, mode="nearest")
    context = uniform_filter1d(energy_db * sounding, span, mode="nearest") / np.maximum(weight, 1e-6)
    above = np.where(sounding > 0, (energy_db - context) / EMPHASIS_DB, 0.0)
    return gaussian_filter1d(np.clip(above, 0.0, 1.0), fps * 0.08)


def drift(count: int, fps: float, degrees: float, rng: np.random.Generator, seconds: float = 1.5) -> np.ndarray:
    """(count,) radians: white noise smoothed over ``seconds`` (a Gaussian), ``degrees`` its expected standard
    deviation (white noise through a Gaussian of sigma s frames keeps 1 / sqrt(2 sqrt(pi) s) of its own)."""
    sigma = seconds * fps
    noise = gaussian_filter1d(rng.standard_normal(count), sigma, mode="wrap")
    return np.deg2rad(degrees) * noise * np.sqrt(2 * np.sqrt(np.pi) * sigma)


def head_tracks(energy_db: np.ndarray, fps: float, config: LivelinessConfig = LivelinessConfig()) -> HeadTracks:
    """Blinks, brows and head pose for a voice of loudness ``energy_db`` per frame."""
    rng = np.random.default_rng(config.seed)
    count = len(energy_db)
    stress = config.emphasis * emphasis(energy_db, fps)
    nod = np.deg2rad(config.head_degrees) * NOD_SHARE * stress
    blink = blinks(count, fps, config.blinks_per_minute, rng)
    yaw, pitch, roll = (drift(count, fps, config.head_degrees * share, rng) for share in (1.0, 0.6, 0.4))
    return HeadTracks(blink=blink, brows=np.clip(stress, 0.0, 1.0), yaw=yaw, pitch=pitch + nod, roll=roll)
