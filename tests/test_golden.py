"""The bundled checkpoint's output on one fixed input, pinned to numbers: a silent change to a block, a
layer's order or the weights' loading changes them. Rewrite the numbers only with a change meant to
change the model's output (and say so in its commit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talking_head.hub import BUNDLED_CHECKPOINT
from talking_head.landmarks.rasterize import draw_landmarks
from talking_head.models.talking_head_model import TalkingHeadModel

SIZE = 128  # the bundled small model's image size
#: Far above what thread counts change (measured: 1 vs 2 threads differ by 2e-8), far below what a changed
#: block does (measured: swapping G's first two residual blocks moves the mean by 2e-3, a pixel by 0.18).
TOLERANCE = 2e-4
#: out.mean(), out.std(), embedding.norm(), and out[0, :, y, x] at the three PIXELS.
GOLDEN_MEAN, GOLDEN_STD, GOLDEN_EMBEDDING_NORM = 0.104008, 0.461553, 4.927461
PIXELS = ((64, 64), (40, 88), (100, 30))
GOLDEN_PIXELS = ((0.683132, 0.799926, 0.000014), (0.309968, 0.010880, -0.281890), (-0.426134, -0.100888, -0.249193))


def fixed_input() -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth picture and a face's landmark drawing, both from formulas (no file, no random numbers)."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, SIZE), torch.linspace(-1, 1, SIZE), indexing="ij")
    picture = torch.stack([torch.sin(3 * x + 1), torch.cos(2 * y - x), x * y]).unsqueeze(0) * 0.8
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    points = np.stack([64 + 36 * np.cos(angles), 70 + 44 * np.sin(angles)], axis=1)
    drawing = torch.from_numpy(draw_landmarks(points, SIZE)).permute(2, 0, 1).float().unsqueeze(0) / 127.5 - 1
    return picture.float(), drawing


@torch.no_grad()
def test_the_bundled_checkpoint_gives_its_golden_numbers() -> None:
    model = TalkingHeadModel.from_pretrained(BUNDLED_CHECKPOINT).eval().float()
    picture, drawing = fixed_input()
    embedding = model.embedder.embed_person(picture, drawing)
    out = model.generator(drawing, embedding=embedding, warped=picture)  # paint_region: the default (None)
    found = (out.mean().item(), out.std().item(), embedding.norm().item())
    pixels = tuple(tuple(out[0, :, y, x].tolist()) for y, x in PIXELS)
    assert found == pytest.approx((GOLDEN_MEAN, GOLDEN_STD, GOLDEN_EMBEDDING_NORM), abs=TOLERANCE)
    assert np.allclose(pixels, GOLDEN_PIXELS, atol=TOLERANCE, rtol=0)
