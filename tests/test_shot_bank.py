"""The K shots as a texture bank: the right shot per region, leave-one-out, and a mouth mask that
covers the mouth only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from talking_head.data.synthetic import make_person, render_video, video_motion
from talking_head.data.synthetic_face import expression_layout, rotation_matrices
from talking_head.data.synthetic_render import make_camera, render
from talking_head.landmarks.align import _open_mouth
from talking_head.mouth_inside import paint_batch, shot_palette
from talking_head.shot_bank import (
    CAVITY_COLOUR,
    MOUTH_POINTS,
    PAINT_FLOOR,
    ShotChoice,
    between_the_lips,
    blend_weights,
    choose_shots,
    mouth_interior,
    mouth_mask,
    paint_region,
    paint_region_window,
    paint_window,
    procrustes_distances,
    sample_shots,
    warp_from_bank,
    warp_shots,
)
from talking_head.warp import sample, sampling_map, warp_to_landmarks


def shots_with_known_answers() -> tuple[np.ndarray, np.ndarray]:
    """Shot 0 neutral; shot 1 the head turned (face squeezed sideways), mouth closed; shot 2 neutral with
    the mouth open. The target: turned like shot 1, mouth open like shot 2."""
    _, landmarks = render_video(3, 0, 1, 128)
    neutral = landmarks[0].astype(np.float64)
    turned = neutral.copy()
    centre = neutral[:48].mean(0)
    turned[:48, 0] = centre[0] + 0.75 * (neutral[:48, 0] - centre[0])
    opened = neutral.copy()
    opened[[56, 57, 58, 65, 66, 67], 1] += 9
    target = turned.copy()
    target[list(MOUTH_POINTS)] = opened[list(MOUTH_POINTS)]
    return np.stack([neutral, turned, opened]), target[None]


def test_the_bank_picks_the_pose_shot_for_the_face_and_the_mouth_shot_for_the_mouth():
    shots, target = shots_with_known_answers()
    choice = choose_shots(shots, target)
    assert choice.face.tolist() == [1] and choice.mouth.tolist() == [2]


def test_leave_one_out_never_picks_the_excluded_shot():
    shots, _ = shots_with_known_answers()
    choice = choose_shots(shots, shots, exclude=np.arange(3))
    assert all(f != i and m != i for i, (f, m) in enumerate(zip(choice.face, choice.mouth)))
    single = choose_shots(shots[:1], shots[:1], exclude=np.array([0]))  # K = 1: nothing else to use
    assert single.face.tolist() == [0]


def test_procrustes_distances_of_many_targets_match_one_at_a_time():
    shots, target = shots_with_known_answers()
    many = procrustes_distances(shots, np.concatenate([target, shots]))
    assert many.shape == (4, 3)
    for row, t in zip(many, np.concatenate([target, shots])):
        np.testing.assert_allclose(row, procrustes_distances(shots, t), atol=1e-6)


def test_the_mouth_mask_covers_the_mouth_and_not_the_eyes():
    _, target = shots_with_known_answers()
    mask = mouth_mask(torch.from_numpy(target).float(), 128)[0, 0]
    mouth = target[0, list(MOUTH_POINTS)].mean(0).round().astype(int)
    eye = target[0, 36:42].mean(0).round().astype(int)
    assert mask[mouth[1], mouth[0]] > 0.95 and mask[eye[1], eye[0]] < 0.01


def test_one_shot_bank_is_the_plain_warp_and_the_mouth_comes_from_the_mouth_shot():
    frames, landmarks = render_video(3, 0, 12, 64)
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    points = torch.from_numpy(landmarks).float()
    target = points[7:8]
    single = warp_from_bank(images[:1], points[:1], target, 64)
    assert torch.equal(single, warp_shots(images[:1], points[:1], np.array([0]), target, 64))
    mixed = warp_from_bank(images[:2], points[:2], target, 64, ShotChoice(np.array([0]), np.array([1])))
    mouth_from_1 = warp_shots(images, points, np.array([1]), target, 64)
    mask = mouth_mask(target, 64)
    inside = mask[0, 0] > 0.99
    assert torch.allclose(mixed[0][:, inside], mouth_from_1[0][:, inside], atol=0.02)
    outside = mask[0, 0] < 1e-4
    assert outside.float().mean() > 0.5
    assert torch.allclose(mixed[0][:, outside], single[0][:, outside], atol=1e-3)


def test_the_paint_region_is_the_inside_of_the_mouth_not_the_lips_corners_or_eyes():
    shots, _ = shots_with_known_answers()
    neutral, opened = torch.from_numpy(shots[[0, 2]]).float()[:, None].unbind(0)

    def at(region: torch.Tensor, point: torch.Tensor) -> float:
        x, y = point.round().long().tolist()
        return region[0, 0, y, x].item()

    for points in (neutral, opened):
        region = paint_region(points, 128)
        inner = points[0, 60:68].mean(0)
        assert at(region, inner) > 0.9
        for outside in (36, 39, 42, 45, 30):  # eye corners, the nose tip: G never repaints them
            assert at(region, points[0, outside]) < 0.01, outside
        for corner in (48, 54):  # the lips' outer corners: at most the soft edge
            assert at(region, points[0, corner]) < 0.25, corner
    # It opens with the mouth: more to paint where a warp has least to show.
    assert paint_region(opened, 128).sum() > 1.5 * paint_region(neutral, 128).sum()


@pytest.mark.parametrize("size", [128, 512])
def test_the_paint_regions_window_from_the_ellipses_holds_all_of_it_and_computes_it_alike(size):
    """The window found from the ellipses' shapes alone holds every pixel of the whole frame's region above the
    floor (no more than a pixel beyond each side), and the region computed over it equals the whole one there;
    a mouth entirely outside the frame has none."""
    shots, _ = shots_with_known_answers()
    points = torch.from_numpy(shots).float() * (size / 128)
    points[1] += torch.tensor([0.2, -0.13]) * size  # a batch whose mouths lie apart
    margin = 3
    whole = paint_region(points, size)
    rows, cols = paint_region_window(points, size, margin)
    read_rows, read_cols = paint_window(whole, margin)
    for found, read in ((rows, read_rows), (cols, read_cols)):
        assert found.start <= read.start <= found.start + 1 and found.stop - 1 <= read.stop <= found.stop
    assert torch.allclose(paint_region(points, size, (rows, cols)), whole[..., rows, cols], atol=1e-6)
    assert paint_region_window(points + 3 * size, size) is None


def smiling_photo_and_mouths(size: int = 128) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A synthetic face whose inner lips are 0.15 eye distances apart, drawn white between them (its
    teeth), and three targets: the same mouth, shut, and opened to 0.45."""
    _, landmarks = render_video(3, 0, 1, size)
    eyes = np.linalg.norm(landmarks[0, 36:42].mean(0) - landmarks[0, 42:48].mean(0))
    photo_points = _open_mouth(landmarks[0].astype(np.float64), 0.15 * eyes)
    import cv2
    image = np.full((size, size, 3), 180, np.uint8)
    cv2.fillPoly(image, [np.round(photo_points[60:68]).astype(np.int32)], (255, 255, 255))
    targets = np.stack([photo_points, _open_mouth(photo_points, 0.0), _open_mouth(photo_points, 0.45 * eyes)])
    photo = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    return photo, torch.from_numpy(photo_points).float()[None], torch.from_numpy(targets).float()


def test_the_mouths_inside_is_shaded_only_where_the_warp_cannot_show_it():
    photo, photo_points, targets = smiling_photo_and_mouths(256)  # teeth 6 px tall
    size = photo.shape[-1]
    source = photo_points.expand(3, -1, -1)
    pixel_map = sampling_map(source, targets, size, size)
    between_lips = sample(between_the_lips(source, size), pixel_map)
    shade = torch.maximum(*mouth_interior(pixel_map, source, targets, between_lips, between_the_lips(targets, size),
                                          1.0, paint_region(targets, size), size))[:, 0]
    assert shade[0].max() < 0.05  # the photo's own mouth: its teeth stay
    # Shut: what lay between its lips is shaded, a dark seam, not a white line.
    assert shade[1].max() > 0.9
    # Open wide: the teeth hang from the lips and the stretch between them is the dark of the mouth.
    lips = targets[2, [62, 66]]
    middle = lips.mean(0).round().long()
    assert shade[2][middle[1], middle[0]] > 0.9
    upper_teeth = (lips[0] + torch.tensor([0.0, 2.0])).round().long()  # just under the upper lip
    assert shade[2][upper_teeth[1], upper_teeth[0]] < 0.2
    # Far from the mouth, nothing.
    eye = targets[2, 36:42].mean(0).round().long()
    assert shade[:, eye[1], eye[0]].max() == 0


def test_the_warped_shots_show_the_inside_of_an_opened_mouth_and_keep_a_still_one():
    photo, photo_points, targets = smiling_photo_and_mouths()
    size = photo.shape[-1]
    warped = warp_shots(photo, photo_points, np.zeros(3, int), targets, size)
    assert (warped[0] - photo[0]).abs().max() < 0.05  # unmoved: the photo
    middle = targets[2, [62, 66]].mean(0).round().long()
    assert (warped[2, :, middle[1], middle[0]] < -0.3).all()  # the throat, dark
    assert (warp_to_landmarks(photo, photo_points, targets[2:], size)[0, :, middle[1], middle[0]] > 0.9).all()


@pytest.mark.parametrize("size", [128, 512])
def test_the_mouth_is_shaded_in_the_paint_regions_window_as_over_the_whole_frame(size):
    photo, photo_points, targets = smiling_photo_and_mouths(size)
    source = photo_points.expand(3, -1, -1)
    warped = warp_shots(photo, photo_points, np.zeros(3, int), targets, size)
    pixel_map = sampling_map(source, targets, size, size)
    region = paint_region(targets, size)
    opened, shut = mouth_interior(pixel_map, source, targets, sample(between_the_lips(source, size), pixel_map),
                                  between_the_lips(targets, size), 1.0, region, size)
    seam = torch.tensor(CAVITY_COLOUR).float().view(1, 3, 1, 1) / 127.5 - 1
    everywhere = (slice(0, size), slice(0, size))
    painted = paint_batch(targets, [shot_palette(photo[0], photo_points[0])] * 3, everywhere, size)
    plain = sample(photo.expand(3, -1, -1, -1), pixel_map)
    whole = torch.maximum(opened, shut)
    colour = (opened * painted + shut * seam) / (opened + shut).clamp_min(1e-6)
    assert whole.amax() > 0.9 and (warped - plain).abs().amax() > 0.5  # there is shading, and it is applied
    assert (warped - (plain + whole * (colour - plain))).abs().max() < 4 * PAINT_FLOOR


def test_shots_are_sampled_for_their_targets_as_if_each_had_its_own_copy():
    frames, landmarks = render_video(3, 0, 6, 32)
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    shots = np.array([2, 0, 2, 5, 0])
    points = torch.from_numpy(landmarks).float()
    pixel_map = sampling_map(points[torch.from_numpy(shots)], points[:5], 32, 32)
    expected = sample(images[torch.from_numpy(shots)], pixel_map)
    assert torch.allclose(sample_shots(images, shots, pixel_map), expected, atol=1e-6)


def test_the_dark_of_an_opened_mouth_stays_between_the_targets_lips():
    """Shaded over the whole paint region, the dark reached past the corners of a mouth narrowing into an "O",
    and dlib read a wide grin; it belongs between the target's inner lips only."""
    photo, photo_points, targets = smiling_photo_and_mouths(256)
    size = photo.shape[-1]
    rounded = targets[2:].clone()
    centre = rounded[0, 48:68].mean(0)
    rounded[0, 48:68, 0] = centre[0] + 0.7 * (rounded[0, 48:68, 0] - centre[0])  # corners in: an "O"
    source = photo_points
    pixel_map = sampling_map(source, rounded, size, size)
    between_lips = sample(between_the_lips(source, size), pixel_map)
    inside = between_the_lips(rounded, size)
    shade = torch.maximum(*mouth_interior(pixel_map, source, rounded, between_lips, inside, 1.0,
                                          paint_region(rounded, size), size))
    assert shade.max() > 0.9
    assert shade[inside < 0.01].max() < 0.01


def test_second_mouth_weights_are_continuous_and_vanish_on_a_shots_own_mouth():
    assert blend_weights(np.array([[0.0, 0.2, 0.3]]))[0] < 1e-6  # the target is a shot's mouth: that shot alone
    assert blend_weights(np.array([[0.1, 0.1, 0.3]]))[0] == pytest.approx(0.5)  # the nearest two tie: half each
    assert blend_weights(np.array([[0.1, 0.3, 0.3]]))[0] == pytest.approx(0.0)  # a new second enters from nothing
    assert blend_weights(np.array([[0.1, 0.2]]))[0] == pytest.approx(1 / 3)  # K = 2
    d1 = np.linspace(0.05, 0.2, 200)
    rows = np.stack([d1, np.full_like(d1, 0.2), np.full_like(d1, 0.35)], axis=1)
    assert np.abs(np.diff(blend_weights(rows))).max() < 0.01


def unrounded_video(identity: int, frames: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic clip whose lips never round: its mouth states differ by their opening alone."""
    person, motion = make_person(identity), video_motion(identity, 0, frames)
    motion = dataclasses.replace(motion, rounding=np.zeros(frames))
    camera = make_camera(person, motion, rotation_matrices(motion.yaw, motion.pitch, motion.roll), size)
    return render(person, motion, expression_layout(person, motion), camera, size)


def test_a_change_of_mouth_shot_is_a_cross_fade_no_larger_than_the_drivers_own_change():
    """A target whose mouth moves slowly from one shot's mouth to another's: the texture's mouth changes from
    frame to frame by no more than a talking driver's own frames typically do (a hard switch of shot was a jump)."""
    frames, landmarks = unrounded_video(5, 48, 128)
    opening = (landmarks[:, [65, 66, 67], 1] - landmarks[:, [61, 62, 63], 1]).mean(1)
    order = np.argsort(opening)
    shot_ids = order[np.linspace(0, len(order) - 1, 4).astype(int)]  # four mouth states, shut to open
    images = torch.from_numpy(frames[shot_ids]).permute(0, 3, 1, 2).float() / 127.5 - 1
    shots = torch.from_numpy(landmarks[shot_ids]).float()
    steps = torch.linspace(0, 1, 40)[:, None, None]
    targets = shots[1].repeat(40, 1, 1)  # the second shot's face, its mouth moving to the third shot's
    mouth = list(MOUTH_POINTS)
    targets[:, mouth] = shots[1, mouth] + steps * (shots[2, mouth] - shots[1, mouth])
    texture = warp_from_bank(images, shots, targets, 128)
    mask = mouth_mask(targets[:1], 128)[0, 0] > 0.5
    change = (texture[1:] - texture[:-1]).abs()[:, :, mask].mean(dim=(1, 2))
    driver = torch.from_numpy(frames).float() / 127.5 - 1
    driver_change = (driver[1:] - driver[:-1]).abs()[:, mask].mean(dim=(1, 2))
    nearest = choose_shots(shots.numpy(), targets.numpy())
    assert set(nearest.mouth) == {1, 2} and set(nearest.face) == {1}
    hard = warp_from_bank(images, shots, targets, 128, ShotChoice(nearest.face, nearest.mouth))
    hard_change = (hard[1:] - hard[:-1]).abs()[:, :, mask].mean(dim=(1, 2))
    # Measured: the hard switch 0.115, the cross-fade at most 0.072, the driver's own frames 0.060 (median) to
    # 0.136; three shots' mouths equally near at the switch is the worst case for a blend of two.
    assert hard_change.max() > driver_change.quantile(0.75)  # without the cross-fade, the switch is a jump
    assert change.max() < 0.7 * hard_change.max() and change.max() <= driver_change.quantile(0.75)
