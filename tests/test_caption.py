"""Captions on comparison videos and report pictures: readable, whole, no shadow copy."""
import numpy as np

from talking_head.render import caption

LONG = "K=8, fine-tuned 40 steps: heldout00036 frame 74"


def _columns(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask.any(axis=0))


def _rows(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask.any(axis=1))


def test_the_outline_stays_around_its_text():
    # A thick outline's glyphs advance further than the text's: at the end of a long caption it stood apart as a
    # dark second copy. On a mid-grey image, the dark outline ends within two pixels of the white text.
    image = np.full((256, 1024, 3), 128, np.uint8)
    out = caption(image, "model (mouth SSIM 0.39)")
    white, dark = (out > 200).all(axis=2), (out < 50).all(axis=2)
    assert _columns(dark)[-1] <= _columns(white)[-1] + 2
    assert _columns(dark)[0] >= _columns(white)[0] - 2


def test_a_long_caption_fits_its_image():
    image = np.full((256, 256, 3), 128, np.uint8)
    out = caption(image, LONG)
    drawn = (out != 128).any(axis=2)
    assert _columns(drawn)[-1] < 255  # not cut at the right edge
    assert _columns(drawn)[-1] - _columns(drawn)[0] > 200  # and still written across most of it


def test_each_line_is_drawn_below_the_one_before():
    image = np.full((256, 256, 3), 128, np.uint8)
    one, two = caption(image, "K=8, fine-tuned 40 steps"), caption(image, "K=8, fine-tuned 40 steps\nheldout00036")
    rows_one, rows_two = _rows((one > 200).all(axis=2)), _rows((two > 200).all(axis=2))
    assert rows_two[-1] > rows_one[-1] + 5
    assert rows_two[0] == rows_one[0]  # the first line stays where it was
