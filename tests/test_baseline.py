"""The warp baseline: picks the nearest shot regardless of position/size/roll, warps it exactly like
scikit-image's piecewise-affine warp, leaves a frame at its own landmarks alone, and beats no warp."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import PiecewiseAffineTransform, warp

from talking_head.baseline import border_points, procrustes_distances, warp_baseline, warp_to_landmarks
from talking_head.data.synthetic import render_video
from talking_head.metrics import psnr


@pytest.fixture(scope="module")
def clip() -> tuple[np.ndarray, np.ndarray]:
    return render_video(2, 0, 24, 64)


def test_a_frame_warped_to_its_own_landmarks_is_unchanged(clip):
    frames, landmarks = clip
    assert np.abs(warp_to_landmarks(frames[3], landmarks[3], landmarks[3]).astype(int) - frames[3]).max() <= 1


def test_the_warp_is_scikit_image_piecewise_affine_warp(clip):
    frames, landmarks = clip
    anchors = border_points(64, 64)
    transform = PiecewiseAffineTransform.from_estimate(np.concatenate([landmarks[20], anchors]),
                                                       np.concatenate([landmarks[0], anchors]))
    expected = warp(frames[0], transform, output_shape=(64, 64), order=1, mode="edge", preserve_range=True)
    ours = warp_to_landmarks(frames[0], landmarks[0], landmarks[20]).astype(float)
    assert np.abs(ours - np.round(expected)).max() <= 1
    assert not np.array_equal(ours, frames[0])  # the landmarks moved, so did the pixels


def test_the_nearest_shot_is_found_whatever_its_position_size_and_roll(clip):
    _, landmarks = clip
    target, other = landmarks[5].astype(np.float64), landmarks[15].astype(np.float64)
    angle = np.radians(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = 0.6 * (target - target.mean(0)) @ rotation.T + (10.0, -4.0)  # same configuration, elsewhere
    distances = procrustes_distances(np.stack([other, moved]), target)
    assert distances[1] < 1e-6 < distances[0]
    # ... while the nearest in plain pixel distance would have been the other frame.
    assert np.abs(other - target).sum() < np.abs(moved - target).sum()


def test_the_baseline_is_reproducible_and_beats_the_unwarped_nearest_shot(clip):
    frames, landmarks = clip
    shots = np.arange(0, 12, 3)
    gains = []
    for target in range(12, 24, 2):
        result = warp_baseline(frames[shots], landmarks[shots], landmarks[target])
        assert np.array_equal(result, warp_baseline(frames[shots], landmarks[shots], landmarks[target]))
        nearest = shots[np.argmin(procrustes_distances(landmarks[shots], landmarks[target]))]
        gains.append(psnr(result, frames[target]) - psnr(frames[nearest], frames[target]))
    assert np.mean(gains) > 1.0  # dB; measured about 3.5 dB on 128-px clips


def test_bad_shapes_are_refused(clip):
    frames, landmarks = clip
    with pytest.raises(ValueError, match="uint8"):
        warp_baseline(frames[:2].astype(np.float32), landmarks[:2], landmarks[3])
    with pytest.raises(ValueError, match=r"\(2, 68, 2\) shot landmarks"):
        warp_baseline(frames[:2], landmarks[:3], landmarks[3])
