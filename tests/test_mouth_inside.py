"""The inside of an opened mouth, painted in the person's colours where no shot shows it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talking_head.data.synthetic import render_video
from talking_head.landmarks.align import _open_mouth, inter_ocular_distance
from talking_head.mouth_inside import DEFAULT_TEETH, paint, paint_batch, palette
from talking_head.shot_bank import between_the_lips, warp_shots


def closed_photo(size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic face whose mouth is shut (no teeth, no inside to copy) and its landmarks."""
    frames, landmarks = render_video(3, 0, 1, size)
    points = _open_mouth(landmarks[0].astype(np.float64), 0.0)
    return frames[0], points


def test_a_closed_mouth_photo_opened_shows_teeth_and_a_tongue_never_a_flat_dark():
    image, points = closed_photo()
    target = _open_mouth(points, 0.45 * inter_ocular_distance(points))
    photo = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    out = warp_shots(photo, torch.from_numpy(points).float()[None], np.zeros(1, int),
                     torch.from_numpy(target).float()[None], image.shape[0])
    inside = between_the_lips(torch.from_numpy(target)[None], image.shape[0])[0, 0] > 0.99
    pixels = ((out[0].permute(1, 2, 0)[inside] + 1) * 127.5).numpy()
    brightness = pixels.mean(axis=1)
    assert len(pixels) > 200
    assert brightness.std() > 25  # not uniformly dark: the mouth has parts
    assert (brightness > 130).mean() > 0.05  # teeth
    assert ((pixels[:, 0] > pixels[:, 1] + 20) & (brightness > 50)).mean() > 0.1  # a tongue, reddish
    assert (brightness < 60).mean() > 0.1  # and the dark of the throat


def test_the_inside_moves_with_the_lips_and_jaw():
    image, points = closed_photo()
    target = _open_mouth(points, 0.4 * inter_ocular_distance(points))
    colours = palette(image, points)
    here = paint(target, colours, inter_ocular_distance(target), (60, 90), (150, 80))
    moved = paint(target + np.array([5.0, 7.0]), colours, inter_ocular_distance(target), (60, 90), (157, 85))
    assert np.allclose(here, moved, atol=1e-6)


@pytest.mark.parametrize("size", [256, 512])
def test_each_mouth_is_painted_in_its_own_box_as_over_the_whole_window(size):
    """paint_batch paints each target within its inner lips' box only: wherever the target's lips let the inside
    show (anti-aliased edge included), it equals ``paint`` over the batch's whole window."""
    image, points = closed_photo(size)
    eyes = inter_ocular_distance(points)
    targets = np.stack([_open_mouth(points, share * eyes) + shift
                        for share, shift in ((0.45, (0.0, 0.0)), (0.2, (-31.3, 17.8)), (0.6, (24.6, -9.1)))])
    window = (slice(int(size * 0.45), int(size * 0.95)), slice(int(size * 0.2), int(size * 0.8)))
    shape, origin = (window[0].stop - window[0].start, window[1].stop - window[1].start), (window[0].start,
                                                                                      window[1].start)
    colours = palette(image, points)
    boxed = paint_batch(torch.from_numpy(targets), [colours] * len(targets), window, size)
    lips = between_the_lips(torch.from_numpy(targets), size, window)[:, 0] > 0
    for out, target, shown in zip(boxed, targets, lips):
        whole = torch.from_numpy(paint(target, colours, inter_ocular_distance(target), shape, origin)) / 127.5 - 1
        assert shown.sum() > 100
        assert (out.permute(1, 2, 0)[shown] - whole[shown]).abs().max() < 1e-5


def test_the_palette_takes_the_photos_teeth_where_it_shows_them():
    image, points = closed_photo()
    assert np.allclose(palette(image, points).teeth / np.array(DEFAULT_TEETH), palette(image, points).teeth[0]
                       / DEFAULT_TEETH[0], atol=1e-6)  # shut: the off-white, at the photo's brightness
    smiling = image.copy()
    opened = _open_mouth(points, 0.2 * inter_ocular_distance(points))
    import cv2
    cv2.fillPoly(smiling, [np.round(opened[60:68]).astype(np.int32)], (250, 250, 245))
    teeth = palette(smiling, opened).teeth
    assert np.abs(teeth - (250, 250, 245)).max() < 6
