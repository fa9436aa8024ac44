"""The texture path's warp: pixels land on their target landmarks, an unmoved face is unchanged, the
border stays put, and a larger source is sampled once at the output's size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talking_head.data.synthetic import render_video
from talking_head.warp import border_anchors, sampling_map, warp_to_landmarks


@pytest.fixture(scope="module")
def clip() -> tuple[torch.Tensor, torch.Tensor]:
    frames, landmarks = render_video(2, 0, 24, 64)
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    return images, torch.from_numpy(landmarks).float()


def test_a_marked_pixel_moves_to_its_target_landmark(clip):
    _, landmarks = clip
    source, target = landmarks[0], landmarks[17]
    for point in (30, 8, 36, 57):  # nose tip, chin, an eye corner, the lower lip
        # The landmark on a pixel centre in both images, and the one pixel there marked in the source.
        here, there = source.clone(), target.clone()
        here[point], there[point] = source[point].round(), target[point].round()
        image = -torch.ones(1, 1, 64, 64)
        image[0, 0, int(here[point, 1]), int(here[point, 0])] = 1.0
        out = warp_to_landmarks(image, here[None], there[None], 64)[0, 0]
        found = np.unravel_index(int(out.argmax()), out.shape)
        assert (found[1], found[0]) == tuple(there[point].long().tolist()), point
        assert out.max() > 0.9  # the mark itself, not a blur of it


def test_a_face_warped_to_its_own_landmarks_is_unchanged(clip):
    images, landmarks = clip
    out = warp_to_landmarks(images[3:4], landmarks[3:4], landmarks[3:4], 64)
    assert (out - images[3:4]).abs().max() < 2e-3


def test_the_image_border_stays_where_it_is(clip):
    _, landmarks = clip
    pixel_map = sampling_map(landmarks[:1], landmarks[10:11], 65, 65)[0]  # anchors on pixel centres
    for x, y in border_anchors(65).tolist():  # corners and edge midpoints
        assert torch.allclose(pixel_map[int(y), int(x)], torch.tensor([x, y]), atol=0.05)


def test_a_moving_head_carries_its_surroundings_with_it_fading_towards_the_still_border(clip):
    _, landmarks = clip
    shifted = landmarks[:1] + torch.tensor([4.0, 0.0])
    pixel_map = sampling_map(landmarks[:1], shifted, 64, 64)[0]
    moved = torch.arange(64.0) - pixel_map[..., 0]  # how far each output pixel's content moved right
    nose = shifted[0, 30].round().long()
    assert moved[nose[1], nose[0]] == pytest.approx(4.0, abs=0.3)  # the face moves exactly
    # The border barely does: pinned at its anchors, within 5 % of the head's motion between them.
    assert moved[:, 0].abs().max() < 0.2 and moved[:, -1].abs().max() < 0.2
    row = moved[nose[1]]  # from the face out to the border, the motion fades without reversing
    right = row[nose[0]:]
    assert (right > -0.05).all() and (right[:-1] - right[1:] > -0.05).all()


def test_a_larger_source_is_sampled_once_at_the_output_size(clip):
    images, landmarks = clip
    big = torch.nn.functional.interpolate(images[:1], size=(256, 256), mode="bicubic", align_corners=False)
    from_big = warp_to_landmarks(big, landmarks[:1] * 4, landmarks[5:6] * 2, 128)
    from_small = warp_to_landmarks(images[:1], landmarks[:1], landmarks[5:6] * 2, 128)
    assert from_big.shape == (1, 3, 128, 128)
    # The same warp either way (up to the sources' own resampling), but the big source is sharper.
    assert (from_big - from_small).abs().mean() < 0.05
    laplacian = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float32).view(1, 1, 3, 3)
    sharpness = [torch.nn.functional.conv2d(x.mean(1, keepdim=True), laplacian).var().item()
                 for x in (from_big, from_small)]
    assert sharpness[0] > 1.2 * sharpness[1]


def test_a_source_with_a_margin_is_warped_as_its_crop_alone(clip):
    images, landmarks = clip
    # The 64 px frame is the centre of a 96 px source (an avatar's bank keeps the photo around its crop):
    # ``frame`` places the crop in it, so a nodding head samples the same pixels as from the crop alone.
    source = torch.full((1, 3, 96, 96), 1.0)
    source[:, :, 16:80, 16:80] = images[:1]
    nod = landmarks[:1] + torch.tensor([3.0, 10.0])
    with_margin = warp_to_landmarks(source, landmarks[:1] + 16, nod, 64, frame=(16.0, 64.0))
    without = warp_to_landmarks(images[:1], landmarks[:1], nod, 64)
    assert (with_margin - without).abs().mean() < 0.01
    # Unmoved, the margin changes nothing: the crop comes back as it was.
    same = warp_to_landmarks(source, landmarks[:1] + 16, landmarks[:1], 64, frame=(16.0, 64.0))
    assert (same - images[:1]).abs().max() < 2e-3


def test_the_spline_evaluated_in_float32_stays_within_a_pixel_of_float64_even_on_a_shut_mouth(clip, monkeypatch):
    from talking_head import warp
    from talking_head.landmarks.align import _open_mouth

    images, points = clip
    points = points * (512 / images.shape[-1])  # a bank-sized source, warped to 256 px as the app does
    shut = torch.from_numpy(np.stack([_open_mouth(p.double().numpy(), 0.0) for p in points[1:5]])).float() / 2
    source = points[:1].expand(len(shut), -1, -1)
    fast = sampling_map(source, shut, 512, 256)
    monkeypatch.setattr(warp, "EVALUATION_DTYPE", torch.float64)
    exact = sampling_map(source, shut, 512, 256)
    assert 0 < (fast - exact).abs().max() < 0.6  # source pixels: a third of an output pixel at most


def test_the_teeth_move_with_the_lips_instead_of_stretching_as_the_mouth_opens(clip):
    from talking_head.landmarks.align import _open_mouth
    from talking_head.warp import TEETH_HANG

    _, landmarks = clip
    photo = landmarks[0].double().numpy() * 2  # on a 128 px face, the teeth 4.5 px tall
    eyes = np.linalg.norm(photo[36:42].mean(0) - photo[42:48].mean(0))
    photo = torch.from_numpy(_open_mouth(photo, 0.15 * eyes)).float()
    opened = torch.from_numpy(_open_mouth(photo.double().numpy(), 0.45 * eyes)).float()
    upper, lower = photo[62], photo[66]
    tooth = upper + TEETH_HANG[0] * (lower - upper)  # the upper teeth's edge, on the photo
    pixel_map = sampling_map(photo[None], opened[None], 128, 128)[0]
    # In the opened mouth the same edge sits as far under the (moved) upper lip as on the photo.
    where = opened[62] + (tooth - upper)
    assert torch.allclose(pixel_map[int(where[1].round()), int(where[0].round())], tooth, atol=0.6)


def test_the_chunked_spline_evaluation_equals_the_textbook_sum_of_kernels():
    from talking_head.warp import SPLINE_CHUNK, evaluate_thin_plate_spline, fit_thin_plate_spline

    generator = torch.Generator().manual_seed(0)
    control = torch.rand(3, 40, 2, generator=generator, dtype=torch.float64)
    values = control + 0.05 * torch.randn(3, 40, 2, generator=generator, dtype=torch.float64)
    coefficients = fit_thin_plate_spline(control, values)
    # Queries on the control points themselves (r = 0) and a count that leaves a partial last chunk.
    query = torch.cat([control, torch.rand(3, 2 * SPLINE_CHUNK + 17, 2, generator=generator, dtype=torch.float64)], 1)

    def textbook(dtype: torch.dtype) -> torch.Tensor:
        q, c, w = query.to(dtype), control.to(dtype), coefficients.to(dtype)
        squared = torch.cdist(q, c).square()
        basis = torch.where(squared > 0, squared * torch.log(squared), torch.zeros_like(squared))
        return (basis @ w[:, :40] + w[:, 40:41] + q @ w[:, 41:]).double()

    exact = textbook(torch.float64)
    evaluated = evaluate_thin_plate_spline(control, coefficients, query)
    assert evaluated.shape == query.shape
    # As close as float32 allows (these random splines have coefficients in the hundreds).
    assert (evaluated.double() - exact).abs().max() <= 2 * (textbook(torch.float32) - exact).abs().max() + 1e-6


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest"])
def test_opencv_sampling_equals_grid_sample(clip, mode):
    from talking_head import warp

    images, landmarks = clip
    nod = landmarks[1:4] + torch.tensor([3.0, 5.0])
    pixel_map = sampling_map(landmarks[:1].expand(3, -1, -1), nod, images.shape[-1], 48)
    pixel_map[0, :4] = -7.0  # outside the image: the border repeats in both
    one_image = images[:1].float()
    fast = warp.sample(one_image, pixel_map, mode)
    assert warp._remap_applies(one_image, mode)
    wanting_a_gradient = one_image.expand(3, -1, -1, -1).clone().requires_grad_()  # so grid_sample samples
    reference = warp.sample(wanting_a_gradient, pixel_map, mode).detach()
    assert fast.shape == reference.shape == (3, 3, 48, 48)
    if mode == "nearest":  # a sample a hair from a pixel's edge may round either way
        assert (fast != reference).any(dim=1).float().mean() < 0.01
    else:  # OpenCV places samples to 1/32 of a pixel
        assert (fast - reference).abs().max() < 0.05 and (fast - reference).abs().mean() < 2e-3
    many = warp.sample(images[1:4].float(), pixel_map, mode)  # one image per map
    assert torch.equal(many[1], warp.sample(images[2:3].float(), pixel_map[1:2], mode)[0])


def _folds(pixel_map: torch.Tensor) -> torch.Tensor:
    """Where a (B, H, W, 2) map turns the image over (its Jacobian's determinant is negative): (B, H-1, W-1)."""
    along_x = pixel_map[:, :-1, 1:] - pixel_map[:, :-1, :-1]
    along_y = pixel_map[:, 1:, :-1] - pixel_map[:, :-1, :-1]
    return along_x[..., 0] * along_y[..., 1] - along_x[..., 1] * along_y[..., 0] < 0


def test_a_smile_closed_by_the_driver_is_squeezed_without_folding_its_teeth(clip, monkeypatch):
    from talking_head import warp
    from talking_head.landmarks.align import _open_mouth

    _, landmarks = clip
    photo = landmarks[0].double().numpy() * 4  # a 256 px face
    eyes = np.linalg.norm(photo[36:42].mean(0) - photo[42:48].mean(0))
    photo = _open_mouth(photo, 0.2 * eyes)
    photo[[65, 67], 1] -= 0.4 * 0.2 * eyes  # a smile: the lower inner lip's ends curve up more than its middle
    shut = _open_mouth(photo, 0.0)  # as the retargeter closes it: the lower lip up by the middle's gap
    source, target = (torch.from_numpy(p).float()[None] for p in (photo, shut))
    mouth = slice(int(photo[48:68, 1].min()) - 8, int(photo[48:68, 1].max()) + 8)
    # Across the mouth the pairs stay a quarter of the photo's gap apart, and an unmoved mouth is left alone.
    across, _ = warp._across_the_mouth(warp.lips_apart(source.double(), target.double()))
    photo_gap, _ = warp._across_the_mouth(source.double())
    assert (across >= warp.LIPS_APART * photo_gap - 1e-6).all()
    assert torch.allclose(across[:, [0, 2]], warp.LIPS_APART * photo_gap[:, [0, 2]])  # the crossed ends: just apart
    assert torch.equal(warp.lips_apart(source, source), source)
    assert not _folds(sampling_map(source, target, 256, 256))[:, mouth].any()
    monkeypatch.setattr(warp, "lips_apart", lambda source, target: target)  # the lips' ends cross: the map folds
    assert _folds(sampling_map(source, target, 256, 256))[:, mouth].any()
