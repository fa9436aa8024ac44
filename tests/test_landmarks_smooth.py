"""Smoothing a driver's landmarks: jitter goes, motion is never delayed (rendering a file sees the future)."""

from __future__ import annotations

import numpy as np
import pytest

from talking_head.landmarks import (CentredSmoother, LandmarkSmoother, detect_video, get_detector,
                                    smooth_stream)
from talking_head.landmarks.align import inter_ocular_distance
from talking_head.landmarks.mouth import mouth_opening

LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]


def with_opening(face: np.ndarray, openings: np.ndarray) -> np.ndarray:
    """(T, 68, 2): ``face`` with its lower lip dropped by each opening (in eye distances)."""
    out = np.repeat(face[None], len(openings), axis=0)
    out[:, LOWER_LIP, 1] += openings[:, None] * inter_ocular_distance(face)
    return out


def jitter(points: np.ndarray) -> float:
    """Mean distance a landmark moves from one frame to the next, in pixels."""
    return float(np.linalg.norm(np.diff(points, axis=0), axis=-1).mean())


@pytest.fixture(scope="module")
def still_head(astronaut) -> np.ndarray:
    """dlib's landmarks on 60 noisy copies of one photo: a still head, the detector's jitter alone."""
    rng = np.random.default_rng(0)
    frames = (np.clip(astronaut + rng.normal(0, 3, astronaut.shape), 0, 255).astype(np.uint8) for _ in range(60))
    return np.stack(list(detect_video(frames, get_detector("dlib"))))


# -------------------------------------------------------------------------- live mode: the One-Euro filter
def test_smoothing_removes_jitter_on_a_still_head(still_head):
    raw = still_head
    smoother = LandmarkSmoother(fps=25)
    smoothed = np.stack([smoother(points) for points in raw])
    # Measured: raw about 0.43 px a frame, smoothed about 0.12 px.
    assert jitter(raw) > 0.2  # the detector does jitter on this input, so the test means something
    assert jitter(smoothed) < 0.2
    assert jitter(smoothed) < 0.4 * jitter(raw)
    assert np.abs(smoothed.mean(axis=0) - raw.mean(axis=0)).max() < 1.0  # no drift


@pytest.mark.parametrize(("hertz", "kept"), [(2, 0.9), (4, 0.8)])
def test_smoothing_follows_a_speaking_mouth(face_landmarks, hertz, kept):
    smoother = LandmarkSmoother(fps=25)
    phase = 2 * np.pi * hertz * np.arange(100) / 25
    opening = 0.3 * inter_ocular_distance(face_landmarks) * (0.5 - 0.5 * np.cos(phase))
    lower_lip = []
    for gap in opening:
        points = face_landmarks.astype(float)
        points[[56, 57, 58, 65, 66, 67], 1] += gap
        lower_lip.append(smoother(points)[66, 1] - face_landmarks[66, 1])
    lower_lip = np.array(lower_lip[50:])  # after the first cycles
    assert np.ptp(lower_lip) > kept * np.ptp(opening)


def test_smoother_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        LandmarkSmoother()(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="positive"):
        LandmarkSmoother(fps=0)


# ------------------------------------------------------------------------------- rendering a file: centred
def test_centred_smoothing_removes_jitter_on_a_still_head(still_head):
    raw = still_head
    smoothed = CentredSmoother().sequence(raw)
    assert jitter(raw) > 0.2  # the detector does jitter on this input, so the test means something
    assert jitter(smoothed) < 0.6 * jitter(raw)
    assert np.abs(smoothed.mean(axis=0) - raw.mean(axis=0)).max() < 0.5  # no drift


def test_a_mouth_that_snaps_open_is_open_on_the_same_frame(face_landmarks):
    openings = np.where((np.arange(30) >= 10) & (np.arange(30) < 20), 0.4, 0.0)
    smoothed = mouth_opening(CentredSmoother().sequence(with_opening(face_landmarks, openings)))
    exact = mouth_opening(with_opening(face_landmarks, openings))
    assert np.abs(smoothed - exact).max() < 0.02  # the snap, the hold and the snap shut, each on its frame


@pytest.mark.parametrize("hertz", [2, 4])
def test_a_speaking_mouth_is_followed_without_delay(face_landmarks, hertz):
    openings = 0.15 * (1 - np.cos(2 * np.pi * hertz * np.arange(100) / 25))
    exact = mouth_opening(with_opening(face_landmarks, openings))
    smoothed = mouth_opening(CentredSmoother().sequence(with_opening(face_landmarks, openings)))
    lags = range(-3, 4)
    best = max(lags, key=lambda lag: np.corrcoef(np.roll(smoothed, -lag)[5:-5], exact[5:-5])[0, 1])
    assert best == 0
    assert np.ptp(smoothed) > 0.95 * np.ptp(exact)


def test_the_stream_keeps_order_and_pairs_and_lets_faceless_frames_through(face_landmarks):
    rng = np.random.default_rng(1)
    sequence = face_landmarks + rng.normal(0, 0.5, (12, 68, 2))
    landmarks = [None if i in (0, 5) else points for i, points in enumerate(sequence)]
    smoother = CentredSmoother(radius=2)
    out = list(smooth_stream(zip(range(12), landmarks), smoother))
    assert [item for item, _ in out] == list(range(12))
    assert out[0][1] is None and out[5][1] is None
    run = smoother.sequence(sequence[6:])  # frames 8 on see no faceless frame in their window
    assert np.allclose(np.stack([p for _, p in out[8:]]), run[2:], atol=1e-4)
    # Frame 6 sees frame 4 two frames back across the faceless frame 5, not as its neighbour.
    expected = smoother(sequence[[4, 6, 7, 8]], 1, np.array([4, 6, 7, 8]))
    assert np.allclose(out[6][1], expected, atol=1e-4)
    assert not np.allclose(out[6][1], smoother(sequence[[4, 6, 7, 8]], 1), atol=1e-4)


def test_the_stream_gives_a_frame_out_once_its_look_ahead_has_come_in(face_landmarks):
    pulled = []

    def source():
        for i in range(10):
            pulled.append(i)
            yield i, face_landmarks

    for item, _ in smooth_stream(source(), CentredSmoother(radius=3)):
        assert max(pulled) <= item + 3


def test_centred_smoother_rejects_bad_settings():
    with pytest.raises(ValueError, match="radius"):
        CentredSmoother(radius=-1)
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        CentredSmoother()(np.zeros((3, 5, 2)), 1)
