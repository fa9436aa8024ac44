"""Frame metrics on real and synthetic faces: SSIM/PSNR ranges, dlib identity similarity, landmark distance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage import data

from talking_head.data.synthetic import render_video
from talking_head.landmarks import crop_face, get_detector, inter_ocular_distance, to_crop_coords
from talking_head.landmarks.align import crop_box
from talking_head.metrics import csim, detected_landmarks, face_descriptor, landmark_distance, psnr, ssim


@pytest.fixture(scope="module")
def astronaut() -> tuple[np.ndarray, np.ndarray]:
    image = data.astronaut()
    return image, get_detector("dlib").detect(image)[0].landmarks


def noisy(frame: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, frame.shape)
    return np.clip(frame + noise, 0, 255).round().astype(np.uint8)


def test_ssim_and_psnr_are_perfect_on_identical_frames_and_fall_with_noise(astronaut):
    frame = crop_face(*astronaut, 128)[0]
    assert ssim(frame, frame) == pytest.approx(1.0)
    assert psnr(frame, frame) == math.inf
    slightly, heavily = noisy(frame, 5), noisy(frame, 40)
    assert 1.0 > ssim(slightly, frame) > ssim(heavily, frame)
    mse = np.mean((slightly.astype(float) - frame) ** 2)
    assert psnr(slightly, frame) == pytest.approx(10 * np.log10(255 ** 2 / mse))  # on the 0-255 range
    with pytest.raises(ValueError, match="uint8"):
        ssim(frame.astype(np.float32), frame)
    with pytest.raises(ValueError, match="same shape"):
        psnr(frame, frame[:64])


def test_csim_is_one_for_a_face_with_itself_high_for_its_mirror_and_lower_for_another_face(astronaut):
    image, landmarks = astronaut
    mirror = np.ascontiguousarray(image[:, ::-1])
    mirror_landmarks = get_detector("dlib").detect(mirror)[0].landmarks
    crop, crop_landmarks = crop_face(image, landmarks, 128)
    same = csim(crop, crop, crop_landmarks)
    mirrored = csim(image, mirror, landmarks, mirror_landmarks)
    synthetic, synthetic_landmarks = render_video(3, 0, 1, 128)
    other = csim(crop, synthetic[0], crop_landmarks, synthetic_landmarks[0])
    assert same == pytest.approx(1.0)
    # Measured: 0.991 for the mirror (dlib distance 0.20, "same person" below 0.6), 0.85 for the synthetic face.
    assert 0.97 < mirrored < 0.999
    assert other < mirrored - 0.08
    # A 128-px crop carries the identity of the 512-px photo (the descriptor aligns from the landmarks).
    assert csim(crop, image, crop_landmarks, landmarks) > 0.99


def test_small_frames_are_upscaled_for_dlib(astronaut):
    image, landmarks = astronaut
    full = face_descriptor(image, landmarks)
    tiny, tiny_landmarks = crop_face(image, landmarks, 32)
    descriptor = face_descriptor(tiny, tiny_landmarks)
    assert descriptor.shape == (128,)
    assert np.dot(full, descriptor) / np.linalg.norm(full) / np.linalg.norm(descriptor) > 0.93
    # Upscaled, dlib finds the face and the points come back in the crop's own pixels (measured: 0.03
    # inter-ocular distances from the 512-px photo's points). The detector's fine pass (docs/faces.md) now
    # finds it in the 32-px crop itself too.
    assert len(get_detector("dlib").detect(tiny)) == 1
    found = detected_landmarks(tiny)
    assert found is not None and found.shape == (68, 2)
    assert np.linalg.norm(found - tiny_landmarks, axis=1).mean() < 0.08 * inter_ocular_distance(tiny_landmarks)


def test_landmark_distance_is_near_zero_on_a_real_photo_and_grows_with_an_offset(astronaut):
    image, landmarks = astronaut
    box = crop_box(landmarks)
    crop = crop_face(image, landmarks, 64, box)[0]  # small: goes through the upscaling path
    expected = to_crop_coords(landmarks, box, 64)
    assert landmark_distance(crop, expected) < 0.06
    shift = np.array([0.5 * inter_ocular_distance(expected), 0.0], np.float32)
    assert landmark_distance(crop, expected + shift) == pytest.approx(0.5, abs=0.06)
    faceless = np.ascontiguousarray(data.coffee()[:256, :256])
    assert math.isnan(landmark_distance(faceless, expected))
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        landmark_distance(crop, expected[:10])


def test_the_mouths_measures_are_in_eye_distances_and_see_a_change_of_shape():
    from talking_head.landmarks.mouth import mouth_opening, mouth_width
    from talking_head.metrics import box_ssim, face_box, mouth_box, mouth_landmark_distance, pearson

    _, landmarks = render_video(3, 0, 1, 256)
    points = landmarks[0].astype(np.float64)
    eyes = inter_ocular_distance(points)
    assert mouth_width(points) == pytest.approx(np.linalg.norm(points[48] - points[54]) / eyes)
    wider = points.copy()
    wider[48, 0] -= 0.1 * eyes
    wider[54, 0] += 0.1 * eyes
    assert mouth_width(wider) == pytest.approx(mouth_width(points) + 0.2, abs=0.01)
    assert mouth_opening(wider * 2) == pytest.approx(mouth_opening(points))  # scale-free
    assert mouth_landmark_distance(wider, points) == pytest.approx(0.2 / 20)  # 2 of 20 points moved 0.1
    assert mouth_landmark_distance(points, points) == 0.0
    assert mouth_width(np.stack([points, wider])).shape == (2,)
    frame = render_video(3, 0, 1, 256)[0][0]
    box = mouth_box(points, frame.shape)
    assert box_ssim(frame, frame, box) == pytest.approx(1.0)
    assert box_ssim(noisy(frame, 30), frame, box) < box_ssim(noisy(frame, 5), frame, box) < 1.0
    x0, y0, x1, y1 = face_box(points, frame.shape)
    assert (x1 - x0) * (y1 - y0) > 2 * (box[2] - box[0]) * (box[3] - box[1])
    assert x0 <= points[48:68, 0].min() and points[48:68, 1].max() <= y1  # the face's box holds the lips
    assert math.isnan(box_ssim(frame, frame, (10, 10, 14, 40)))  # narrower than SSIM's window
    series = np.arange(10.0)
    assert pearson(series, 2 * series + 1) == pytest.approx(1.0)
    assert pearson(series, -series) == pytest.approx(-1.0)
    assert math.isnan(pearson(series, np.ones(10)))


def test_a_similarity_fitted_on_points_maps_them_exactly():
    from talking_head.landmarks.align import similarity_matrix

    points = np.random.default_rng(0).uniform(0, 100, (12, 2))
    angle, scale = 0.3, 1.4
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = points @ rotation.T + (5, -7)
    matrix = similarity_matrix(points, moved)
    np.testing.assert_allclose(points @ matrix[:, :2].T + matrix[:, 2], moved, atol=1e-9)
