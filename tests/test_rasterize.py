"""The landmark image the generator sees: every face part drawn, each in its own colour, with a line
width that scales with the image, and clear errors for malformed landmarks."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from talking_head.landmarks import LANDMARK_PARTS, crop_face, detect_face, draw_landmarks, get_detector
from talking_head.landmarks.rasterize import overlay_landmarks


@pytest.fixture(scope="module")
def crop_and_landmarks() -> tuple[np.ndarray, np.ndarray]:
    astronaut = data.astronaut()
    return crop_face(astronaut, detect_face(astronaut, get_detector("dlib")).landmarks, 256)


def colour_at(image: np.ndarray, point: np.ndarray) -> np.ndarray:
    x, y = np.round(point).astype(int)
    return image[y, x].astype(float)


@pytest.mark.parametrize("part", LANDMARK_PARTS, ids=lambda part: part.name)
def test_each_part_is_drawn_in_its_own_colour(crop_and_landmarks, part):
    _, landmarks = crop_and_landmarks
    drawing = draw_landmarks(landmarks, 256)
    colour = np.array(part.color, dtype=float)
    # The middle of each of the part's segments; where two parts cross (a smile's inner and outer lip corners lie
    # a pixel apart) the later one is on top, so the part's colour must hold on most of them, not on one.
    points = landmarks[list(part.indices)]
    pixels = [colour_at(drawing, (a + b) / 2) for a, b in zip(points[:-1], points[1:])]
    cosines = [p @ colour / max(np.linalg.norm(p) * np.linalg.norm(colour), 1e-9) for p in pixels]
    assert np.median([np.linalg.norm(p) for p in pixels]) > 0.5 * np.linalg.norm(colour)
    assert np.median(cosines) > 0.98, f"{part.name} drawn as {pixels}, expected the hue of {part.color}"


def test_every_part_is_present_and_nothing_else(crop_and_landmarks):
    _, landmarks = crop_and_landmarks
    drawing = draw_landmarks(landmarks, 256)
    for part in LANDMARK_PARTS:
        exact = np.all(drawing == part.color, axis=-1)
        assert exact.sum() > 5 * len(part.indices), f"{part.name} is missing"
    lit = np.argwhere(drawing.any(axis=-1))[:, ::-1]
    assert lit.min(axis=0).min() >= np.floor(landmarks.min(axis=0)).min() - 3
    assert np.all(lit.max(axis=0) <= np.ceil(landmarks.max(axis=0)) + 3)


def test_line_width_scales_with_the_image(crop_and_landmarks):
    _, landmarks = crop_and_landmarks
    small = np.count_nonzero(draw_landmarks(landmarks / 2, 128).any(axis=-1))
    large = np.count_nonzero(draw_landmarks(landmarks, 256).any(axis=-1))
    assert 3.0 < large / small < 5.0  # twice the length and twice the width: four times the ink
    thin = np.count_nonzero(draw_landmarks(landmarks, 256, thickness=1).any(axis=-1))
    thick = np.count_nonzero(draw_landmarks(landmarks, 256, thickness=6).any(axis=-1))
    assert thick > 2 * thin
    assert draw_landmarks(landmarks / 2, (128, 200)).shape == (128, 200, 3)


@pytest.mark.parametrize("shape", [(67, 2), (68, 1), (2, 68)])
def test_malformed_landmarks_raise_value_error(shape):
    with pytest.raises(ValueError, match="expected 68 landmarks"):
        draw_landmarks(np.zeros(shape), 64)


@pytest.mark.parametrize("shape", [(68,), (68, 2, 2)])
def test_flat_or_nested_landmarks_raise_value_error(shape):
    with pytest.raises(ValueError, match="expected 68 landmarks"):
        draw_landmarks(np.zeros(shape), 64)


def test_an_overlay_draws_every_face_over_the_photo_and_keeps_the_rest(crop_and_landmarks):
    crop, landmarks = crop_and_landmarks
    other = landmarks * 0.5 + 10  # a second, smaller face in the top-left corner
    overlay = overlay_landmarks(crop, [landmarks, other])
    first, second = draw_landmarks(landmarks, 256), draw_landmarks(other, 256)
    on_first, on_second = first.any(axis=-1), second.any(axis=-1)
    assert np.array_equal(overlay[on_second], second[on_second])  # the lines, in the parts' colours
    assert np.array_equal(overlay[on_first & ~on_second], first[on_first & ~on_second])  # the later face on top
    untouched = ~(on_first | on_second)
    assert np.array_equal(overlay[untouched], crop[untouched]) and untouched.mean() > 0.8
    assert np.array_equal(overlay_landmarks(crop, []), crop) and overlay_landmarks(crop, [landmarks]) is not crop
