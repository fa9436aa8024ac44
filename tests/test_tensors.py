"""Pictures <-> network tensors: the one conversion both ways, exact to the level."""

from __future__ import annotations

import numpy as np
import torch

from talking_head.tensors import images_to_tensor, tensor_to_images


def test_a_tensor_becomes_pictures_rounded_and_clamped_without_touching_the_tensor():
    generator = torch.Generator().manual_seed(0)
    tensor = torch.rand(3, 3, 17, 23, generator=generator) * 2.4 - 1.2  # beyond [-1, 1] on both sides
    kept = tensor.clone()
    pictures = tensor_to_images(tensor)
    expected = np.clip(np.round((tensor.numpy().transpose(0, 2, 3, 1) + 1) * 127.5), 0, 255).astype(np.uint8)
    assert pictures.dtype == np.uint8 and pictures.shape == (3, 17, 23, 3) and pictures.flags["C_CONTIGUOUS"]
    assert np.array_equal(pictures, expected)
    assert torch.equal(tensor, kept)
    channels_last = tensor.to(memory_format=torch.channels_last)  # its permuted view is already picture-shaped
    assert np.array_equal(tensor_to_images(channels_last), expected)
    assert torch.equal(channels_last, kept)


def test_pictures_survive_the_round_trip():
    pictures = np.random.default_rng(0).integers(0, 256, (2, 9, 11, 3), dtype=np.uint8)
    assert np.array_equal(tensor_to_images(images_to_tensor(pictures)), pictures)
    assert np.array_equal(tensor_to_images(images_to_tensor(pictures).bfloat16()),
                          tensor_to_images(images_to_tensor(pictures).bfloat16().float()))
