"""The shared crop convention, landmark smoothing on a still head and during speech, and retargeting a
driver's motion onto a source face that keeps its own shape."""

from __future__ import annotations

import math

import numpy as np
import pytest

from talking_head.landmarks import (
    FACE_FRACTION,
    VERTICAL_OFFSET,
    Retargeter,
    crop_box,
    crop_face,
    detect_face,
    from_crop_coords,
    get_detector,
    inter_ocular_distance,
    retarget,
    to_crop_coords,
)
from talking_head.landmarks import align as align_module
from talking_head.landmarks.align import BROW_STRENGTH, HEAD_TRAVEL, POSE_FORESHORTENING, RIGID_POINTS


# ------------------------------------------------------------------------------------------ crop
def test_crop_box_frames_the_face_by_the_shared_convention(face_landmarks):
    x0, y0, side = crop_box(face_landmarks)
    low, high = face_landmarks.min(axis=0), face_landmarks.max(axis=0)
    assert max(high - low) / side == pytest.approx(FACE_FRACTION)
    assert x0 + side / 2 == pytest.approx((low[0] + high[0]) / 2)
    assert (low[1] + high[1]) / 2 - (y0 + side / 2) == pytest.approx(VERTICAL_OFFSET * side)
    assert low[1] - y0 > y0 + side - high[1]  # more room above the brows (forehead) than below the chin


def test_crop_landmarks_agree_with_a_fresh_detection_on_the_crop(astronaut, face_landmarks):
    crop, crop_landmarks = crop_face(astronaut, face_landmarks, 256)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    redetected = detect_face(crop, get_detector("dlib")).landmarks
    assert np.abs(redetected - crop_landmarks).mean() < 2.0


def test_crop_coordinates_round_trip(face_landmarks):
    box = crop_box(face_landmarks)
    in_crop = to_crop_coords(face_landmarks, box, 128)
    assert in_crop.min() > 0 and in_crop.max() < 128
    np.testing.assert_allclose(from_crop_coords(in_crop, box, 128), face_landmarks, atol=1e-3)


def test_crop_outside_the_image_repeats_border_pixels_instead_of_black():
    image = np.full((200, 200, 3), 90, np.uint8)
    image[:, 0] = (200, 30, 30)  # a red left edge
    landmarks = np.random.default_rng(0).uniform(5, 60, size=(68, 2))  # a face at the top-left corner
    crop, _ = crop_face(image, landmarks, 64)
    assert crop.min() > 0
    assert np.all(crop[:, 0] == (200, 30, 30))  # the box starts left of the image: the edge is repeated


def test_large_downscales_are_antialiased_and_not_shifted(astronaut, face_landmarks):
    # Cropping a 4x upscaled photo to 128 pixels must give the crop of the original: any half-pixel
    # error in the area-shrink step would show up as a shift.
    big = np.kron(astronaut, np.ones((4, 4, 1), np.uint8))
    big_landmarks = face_landmarks * 4 + 1.5  # original pixel x is centred on 4x + 1.5
    crop, crop_landmarks = crop_face(big, big_landmarks, 128)
    reference, reference_landmarks = crop_face(astronaut, face_landmarks, 128)
    np.testing.assert_allclose(crop_landmarks, reference_landmarks, atol=1e-3)
    assert np.abs(crop.astype(float) - reference).mean() < 3.0
    # A one-pixel checkerboard shrunk 8x must come out as flat grey, not as aliasing patterns.
    checker = ((np.indices((1024, 1024)).sum(axis=0) % 2) * 255).astype(np.uint8)
    square = np.array([[0, 0], [1023, 1023]] * 34, dtype=float) * 0.5 + 256
    flat, _ = crop_face(checker, square, 64)
    assert flat.std() < 4.0 and abs(flat.mean() - 127.5) < 4.0


# ----------------------------------------------------------------------------------- retargeting
def rotate(points: np.ndarray, degrees: float, centre: np.ndarray) -> np.ndarray:
    angle = math.radians(degrees)
    matrix = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return (points - centre) @ matrix.T + centre


def roll(points: np.ndarray) -> float:
    """Head roll: the angle of the line through the eye centres, in degrees."""
    dx, dy = points[42:48].mean(axis=0) - points[36:42].mean(axis=0)
    return math.degrees(math.atan2(dy, dx))


def jaw_width(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[16] - points[0]))


def mouth_gap(points: np.ndarray) -> float:
    """Inner-lip opening: upper inner lip (61-63) to lower inner lip (65-67)."""
    return float(np.linalg.norm(points[65:68].mean(axis=0) - points[61:64].mean(axis=0)))


@pytest.fixture(scope="module")
def driver(face_landmarks):
    """A driver with another face shape (wider jaw, bigger, elsewhere in the frame) that opens its mouth
    and tilts its head by 25 degrees."""
    centre = face_landmarks.mean(axis=0)
    reference = (face_landmarks - centre) * 1.4 + centre + (20, -10)
    reference[:17, 0] = (reference[:17, 0] - reference[27, 0]) * 1.5 + reference[27, 0]  # a wider jaw
    opened = reference.copy()
    opened[[56, 57, 58, 65, 66, 67], 1] += 12.0
    opened[5:12, 1] += 8.0  # the chin drops with the lip
    current = rotate(opened, 25.0, reference[30])
    return reference.astype(np.float32), opened, current.astype(np.float32)


def test_relative_retargeting_keeps_the_source_face_and_transfers_the_motion(face_landmarks, driver):
    reference, opened, current = driver
    result = retarget(face_landmarks, reference, current, mode="relative")
    scale = inter_ocular_distance(face_landmarks) / inter_ocular_distance(reference)
    # The source's shape is kept ...
    # (Adding the driver's displacements to the source instead would widen this jaw by about 7 %.)
    assert inter_ocular_distance(result) == pytest.approx(inter_ocular_distance(face_landmarks), rel=0.005)
    assert jaw_width(result) == pytest.approx(jaw_width(face_landmarks), rel=0.005)
    # ... while the driver's head roll and mouth opening (rescaled to the source's face) transfer.
    assert roll(result) - roll(face_landmarks) == pytest.approx(25.0, abs=0.5)
    opening = (mouth_gap(opened) - mouth_gap(reference)) * scale
    assert mouth_gap(result) - mouth_gap(face_landmarks) == pytest.approx(opening, rel=0.1)


def test_absolute_retargeting_carries_the_drivers_face_shape(face_landmarks, driver):
    reference, _, current = driver
    result = retarget(face_landmarks, reference, current, mode="absolute")
    driver_jaw_ratio = jaw_width(reference) / inter_ocular_distance(reference)
    assert jaw_width(result) / inter_ocular_distance(result) == pytest.approx(driver_jaw_ratio, rel=0.02)
    assert jaw_width(result) > 1.3 * jaw_width(face_landmarks)  # the identity gap the paper notes
    assert roll(result) - roll(face_landmarks) == pytest.approx(25.0, abs=2.0)


def test_a_still_driver_leaves_the_source_unchanged(face_landmarks, driver):
    reference = driver[0]
    np.testing.assert_allclose(retarget(face_landmarks, reference, reference), face_landmarks, atol=1e-3)


def test_retargeter_takes_the_first_driver_frame_as_reference(face_landmarks, driver):
    reference, _, current = driver
    retargeter = Retargeter(face_landmarks)
    np.testing.assert_allclose(retargeter(reference), face_landmarks, atol=1e-3)
    np.testing.assert_allclose(retargeter(current), retarget(face_landmarks, reference, current), atol=1e-4)
    neutral = Retargeter(face_landmarks, reference=reference)
    np.testing.assert_allclose(neutral(current), retargeter(current), atol=1e-4)
    with pytest.raises(ValueError, match="unknown retargeting mode"):
        Retargeter(face_landmarks, mode="mirror")


def test_a_driver_closing_from_an_open_reference_returns_to_the_sources_mouth_without_crossing(face_landmarks, driver):
    reference = driver[0]
    opened = reference.astype(np.float64).copy()
    opened[[55, 56, 57, 58, 59, 65, 66, 67, 7, 8, 9], 1] += 0.3 * inter_ocular_distance(reference)
    # The driver's reference has its mouth open; it then shuts it (back to ``reference``).
    result = retarget(face_landmarks, opened, reference)
    # The driver is back at the astronaut's own opening (the fixture's driver is her face, enlarged):
    # so is she, to a tenth of a pixel, not closed past closed by 0.3 eye distances.
    assert align_module.mouth_gap(result) == pytest.approx(align_module.mouth_gap(face_landmarks), abs=0.1)
    still = [*range(5), *range(12, 48)]  # all but the mouth and the chin, which closes it
    np.testing.assert_allclose(result[still], retarget(face_landmarks, reference, reference)[still], atol=0.5)
    # The chin is where her own opening puts it, not pushed down by the lips the driver closed (it was 0.3 eye
    # distances low, the face that much longer).
    jaw = list(align_module.JAW_SHARE)
    np.testing.assert_allclose(result[jaw], face_landmarks[jaw], atol=0.5)


def narrowed_mouth(points: np.ndarray, factor: float) -> np.ndarray:
    """``points`` with the mouth's width times ``factor`` about its centre."""
    out = points.astype(np.float64).copy()
    centre = out[48:68, 0].mean()
    out[48:68, 0] = (out[48:68, 0] - centre) * factor + centre
    return out


def test_a_mouth_narrows_by_the_drivers_share_of_its_width(face_landmarks, driver):
    """An "O" on a smiling photo: her corners, further apart than the driver's, come in by as large a share of her
    mouth's width as the driver's come in of its own (added as the driver's displacement, by less)."""
    reference = narrowed_mouth(driver[0], 0.7)  # the driver's mouth is 0.7 as wide as hers, in eye distances
    rounded = narrowed_mouth(reference, 0.9)
    assert align_module.mouth_width_ratio(face_landmarks, reference) == pytest.approx(1 / 0.7, rel=1e-3)
    result = retarget(face_landmarks, reference, rounded)
    width = float(np.linalg.norm(result[54] - result[48]))
    assert width == pytest.approx(0.9 * np.linalg.norm(face_landmarks[54] - face_landmarks[48]), rel=0.01)
    assert align_module.mouth_width_ratio(face_landmarks, narrowed_mouth(reference, 0.1)) == 1.5  # clipped


def squeeze_sideways(points: np.ndarray, factor: float) -> np.ndarray:
    """A yaw's foreshortening: the face narrowed about its nose bridge."""
    out = points.astype(np.float64).copy()
    out[:, 0] = (out[:, 0] - out[27, 0]) * factor + out[27, 0]
    return out


def test_the_mouth_opens_as_far_as_the_drivers_in_eye_distances(face_landmarks, driver):
    reference = driver[0].astype(np.float64)
    iod_driver, iod_source = inter_ocular_distance(reference), inter_ocular_distance(face_landmarks)
    assert align_module.mouth_gap(face_landmarks) > 0.1 * iod_source  # the astronaut smiles with her lips apart
    closed = align_module._open_mouth(reference, 0.0)
    opened = align_module._open_mouth(reference, 0.4 * iod_driver)
    # Whatever the driver's first frame: closed closes her lips, 0.4 eye distances opens hers by as much.
    for first in (closed, opened):
        assert align_module.mouth_gap(retarget(face_landmarks, first, closed)) == pytest.approx(0.0, abs=0.05)
        assert align_module.mouth_gap(retarget(face_landmarks, first, opened)) == pytest.approx(0.4 * iod_source, rel=0.02)


def test_a_turning_drivers_foreshortening_is_damped_and_its_roll_kept(face_landmarks, driver):
    reference = driver[0].astype(np.float64)
    turned = rotate(squeeze_sideways(reference, 0.64), 10.0, reference[27])
    result = retarget(face_landmarks, reference, turned)
    squeeze = POSE_FORESHORTENING and 0.64 ** POSE_FORESHORTENING  # 0.8 at half strength
    unrolled = rotate(result, -10.0, result[27])
    assert jaw_width(unrolled) / jaw_width(face_landmarks) == pytest.approx(squeeze, rel=0.03)
    assert roll(result) - roll(face_landmarks) == pytest.approx(10.0, abs=1.0)  # the eye line tilts a little as the face narrows


def test_a_moving_driver_moves_the_head_by_a_damped_share(face_landmarks, driver):
    reference = driver[0].astype(np.float64)
    scale = inter_ocular_distance(face_landmarks) / inter_ocular_distance(reference)
    result = retarget(face_landmarks, reference, reference + (20.0, 0.0))
    rigid = list(RIGID_POINTS)
    shift = result[rigid].mean(axis=0) - face_landmarks[rigid].mean(axis=0)
    # (The driver's frame is turned a fraction of a degree against the source's: compare lengths.)
    assert np.linalg.norm(shift) == pytest.approx(HEAD_TRAVEL * 20.0 * scale, abs=0.02)
    assert abs(shift[1]) < 0.1


def test_brows_rise_with_the_driver_but_never_press_onto_the_eyes(face_landmarks, driver):
    reference = driver[0].astype(np.float64)
    scale = inter_ocular_distance(face_landmarks) / inter_ocular_distance(reference)
    brows = list(range(17, 27))
    step = 0.1 * inter_ocular_distance(reference)
    lowered, raised = reference.copy(), reference.copy()
    lowered[brows, 1] += step  # image y points down: a frown, or a nod's parallax
    raised[brows, 1] -= step
    np.testing.assert_allclose(retarget(face_landmarks, reference, lowered)[brows], face_landmarks[brows], atol=0.05)
    lift = face_landmarks[brows, 1] - retarget(face_landmarks, reference, raised)[brows, 1]
    np.testing.assert_allclose(lift, BROW_STRENGTH * step * scale, rtol=0.05)


def test_a_collapsed_driver_detection_gives_finite_landmarks_not_an_error(face_landmarks, driver):
    reference = driver[0].astype(np.float64)
    for current in (np.full_like(reference, 100.0),  # every point at one place
                    np.stack([reference[:, 0], np.full(68, 50.0)], axis=1)):  # all on one line
        result = retarget(face_landmarks, reference, current)
        assert result.shape == (68, 2) and np.isfinite(result).all()
    # ... and so does a source whose eyes sit on one point (a crafted avatar): no singular alignment.
    assert np.isfinite(retarget(np.full_like(reference, 64.0), reference, reference + 3.0)).all()
