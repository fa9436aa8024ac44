"""A head that lives while it speaks: seeded blinks at a natural rate, brows and a nod on emphasis, a small drift;
and the tracks drawn as 68 landmarks in the photo's own face that the retargeter passes on as they are."""

from __future__ import annotations

import numpy as np
import pytest

from talking_head.landmarks.align import Retargeter
from talking_head.landmarks.mouth import mouth_opening, mouth_width
from talking_head.speech.driver import driver_frame, pose_head, shape_eyes_and_brows, shape_mouth
from talking_head.speech.liveliness import LivelinessConfig, blinks, emphasis, head_tracks
from talking_head.speech.tracks import MouthTracks

FPS = 25.0


def onsets(closure: np.ndarray) -> np.ndarray:
    return np.flatnonzero((closure[1:] > 0.4) & (closure[:-1] <= 0.4)) + 1


def test_blinks_come_at_a_natural_rate_from_the_seed() -> None:
    minute = int(60 * FPS)
    counts = [len(onsets(blinks(minute, FPS, 17.0, np.random.default_rng(seed)))) for seed in range(5)]
    assert 10 <= np.mean(counts) <= 24
    closure = blinks(minute, FPS, 17.0, np.random.default_rng(3))
    assert np.diff(onsets(closure)).min() >= FPS  # never closer than a second
    assert closure.max() == 1.0 and np.mean(closure > 0.5) < 0.1
    np.testing.assert_array_equal(closure, blinks(minute, FPS, 17.0, np.random.default_rng(3)))


def test_brows_and_nod_follow_the_voices_emphasis() -> None:
    energy = np.full(int(6 * FPS), -30.0)
    energy[::5] = -60.0  # pauses between syllables
    stressed = slice(int(3 * FPS), int(3.3 * FPS))
    energy[stressed] = -18.0
    stress = emphasis(energy, FPS)
    assert stress[stressed].max() > 0.8 and stress[: int(2.5 * FPS)].max() < 0.3
    lively, still = head_tracks(energy, FPS), head_tracks(energy, FPS, LivelinessConfig(emphasis=0.0))
    assert lively.brows[stressed].max() > 0.8 and not still.brows.any()
    assert (lively.pitch - still.pitch)[stressed].max() > np.deg2rad(1.0)
    long = head_tracks(np.full(int(120 * FPS), -20.0), FPS)
    assert np.rad2deg(np.std(long.yaw)) == pytest.approx(LivelinessConfig().head_degrees, rel=0.4)
    assert np.rad2deg(np.abs(np.diff(long.yaw)).max()) < 0.5  # a drift, not a jitter
    np.testing.assert_array_equal(head_tracks(energy, FPS).yaw, lively.yaw)
    assert not np.array_equal(head_tracks(energy, FPS, LivelinessConfig(seed=1)).yaw, lively.yaw)


def test_the_mouth_is_drawn_as_asked(face_landmarks: np.ndarray) -> None:
    for opening in (0.0, 0.12, 0.3):
        assert mouth_opening(shape_mouth(face_landmarks, opening, 0.0)) == pytest.approx(opening, abs=0.01)
    rounded = shape_mouth(face_landmarks, 0.12, 1.0)
    assert mouth_width(rounded) < 0.85 * mouth_width(shape_mouth(face_landmarks, 0.12, 0.0))
    assert mouth_opening(rounded) == pytest.approx(0.12, abs=0.01)
    shut = shape_eyes_and_brows(face_landmarks, 1.0, 1.0)
    assert np.abs(shut[[37, 38]] - shut[[41, 40]]).max() < 0.5
    assert (shut[17:27, 1] < face_landmarks[17:27, 1] - 1).all()
    np.testing.assert_allclose(pose_head(face_landmarks, 0.0, 0.0, 0.0), face_landmarks, atol=1e-9)
    nodded = pose_head(face_landmarks, 0.0, np.deg2rad(5), 0.0)
    assert nodded[30, 1] > face_landmarks[30, 1]


def test_the_retargeter_passes_the_drawn_mouth_on(face_landmarks: np.ndarray) -> None:
    """Through the driving path's retargeting (relative, the photo its reference), with the head moving too."""
    opening = np.array([0.0, 0.2, 0.05, 0.0, 0.25])
    mouth = MouthTracks(opening, np.array([0.0, 0.0, 1.0, 1.0, 0.0]), FPS)
    head = head_tracks(np.full(len(opening), -20.0), FPS, LivelinessConfig(seed=2, head_degrees=3.0))
    retarget = Retargeter(face_landmarks, "relative", face_landmarks)
    shown = np.stack([retarget(driver_frame(face_landmarks, mouth, head, i)) for i in range(len(opening))])
    np.testing.assert_allclose(mouth_opening(shown), opening, atol=0.02)
