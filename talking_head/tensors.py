"""Pictures <-> network tensors, one convention for inference and training alike.

Pictures are (N, H, W, 3) uint8 arrays, as photos, videos and datasets hold them; the networks take and
return (N, 3, H, W) float tensors in [-1, 1]. Written once so that what a model was trained on and what it
is shown at inference cannot drift apart (a rounding or range change would pass every shape check).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from talking_head.landmarks.rasterize import draw_landmarks


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def tensor_to_images(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8, clamped to the range and rounded to the nearest level
    (in float32 whatever ``images``' dtype, so a bf16 output is not rounded twice)."""
    pixels = images.detach().float().permute(0, 2, 3, 1).cpu()  # a view of ``images`` on the CPU
    out = torch.empty(pixels.shape, dtype=torch.float32)  # laid out as pictures: one copy, then in place
    out.copy_(pixels)
    return out.add_(1).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8).numpy()


def to_network(frames: np.ndarray, landmarks: np.ndarray, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, h, w, 3) uint8 frames + (N, 68, 2) landmarks -> (N, 3, S, S) frames and landmark images in [-1, 1].

    Frames are resized to the model's size and landmarks scaled with them, so a 128 px dataset serves a
    32 px test model too.
    """
    scale = image_size / frames.shape[2]
    if frames.shape[1:3] != (image_size, image_size):
        frames = np.stack([cv2.resize(f, (image_size, image_size), interpolation=cv2.INTER_AREA) for f in frames])
    drawings = np.stack([draw_landmarks(lm * scale, image_size) for lm in landmarks])
    return images_to_tensor(frames), images_to_tensor(drawings)
