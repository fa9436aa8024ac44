"""An avatar: one person, personalised once, animated many times; saved as a single safetensors file.

The file holds the personal generator (G' with spectral norm baked in, psi', e_new) and what
rendering needs from the photos: the reference face crop and its landmarks (retargeting keeps this
face's shape), the first photo with the crop's place in it (for pasting the face back) and, on the
texture path, the K shots as ``BANK_IMAGE_SIZE`` crops (the face's ``BANK_SIZE`` crop and a margin of
the photo around it) with their landmarks: the texture bank the warp copies from. Nothing in it can execute code, and it renders without the meta-learned model.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from talking_head.config import ModelConfig
from talking_head.errors import InputError
from talking_head.finetune import PersonalGenerator
from talking_head.landmarks.align import CropBox
from talking_head.shot_bank import BANK_IMAGE_SIZE

#: v2 added the texture bank; v1 files (pure-synthesis generators, no bank) still load.
AVATAR_FORMAT = "talking-head-avatar-v2"
READABLE_FORMATS = ("talking-head-avatar-v1", AVATAR_FORMAT)


@dataclass
class Avatar:
    generator: PersonalGenerator
    source_crop: np.ndarray  # (S, S, 3) uint8: the first photo's face crop
    source_landmarks: np.ndarray  # (68, 2) float32, in crop pixels
    photo: np.ndarray  # (H, W, 3) uint8: the first photo, for pasting the face back
    photo_box: CropBox  # the crop's (x0, y0, side) in the photo's pixels
    info: dict[str, Any] = field(default_factory=dict)  # K, steps, weights, timings
    bank_crops: np.ndarray | None = None  # (K, S, S, 3) uint8: the shots, cropped like source_crop
    bank_landmarks: np.ndarray | None = None  # (K, 68, 2) float32, in bank pixels

    def __post_init__(self) -> None:
        if self.generator.config.texture_path and (self.bank_crops is None or self.bank_landmarks is None):
            raise ValueError("a texture-path avatar needs its texture bank (bank_crops, bank_landmarks)")

    @property
    def image_size(self) -> int:
        return self.generator.config.image_size

    @property
    def texture_path(self) -> bool:
        return self.generator.config.texture_path

    @functools.cached_property
    def bank_images(self) -> torch.Tensor:
        """The bank as (K, 3, S, S) in [-1, 1], converted once (every rendered batch warps from it)."""
        return torch.from_numpy(np.ascontiguousarray(self.bank_crops)).permute(0, 3, 1, 2).float() / 127.5 - 1

    def save(self, path: str | Path) -> Path:
        """Write the avatar atomically (a crash never leaves a half-written file under ``path``)."""
        path = Path(path)
        tensors = {f"generator.{k}": v.detach().cpu().contiguous() for k, v in self.generator.state_dict().items()}
        tensors.update({
            "source_crop": torch.from_numpy(np.array(self.source_crop, dtype=np.uint8)),
            "source_landmarks": torch.from_numpy(np.ascontiguousarray(self.source_landmarks, dtype=np.float32)),
            "photo": torch.from_numpy(np.array(self.photo, dtype=np.uint8)),
            "photo_box": torch.tensor(self.photo_box, dtype=torch.float64),
        })
        if self.bank_crops is not None and self.bank_landmarks is not None:
            tensors["bank_crops"] = torch.from_numpy(np.ascontiguousarray(self.bank_crops, dtype=np.uint8))
            tensors["bank_landmarks"] = torch.from_numpy(np.ascontiguousarray(self.bank_landmarks, dtype=np.float32))
        metadata = {"format": AVATAR_FORMAT, "config": json.dumps(self.generator.config.to_dict()),
                    "info": json.dumps(self.info)}
        partial = path.with_name(path.name + ".partial")
        save_file(tensors, str(partial), metadata=metadata)
        os.replace(partial, path)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "Avatar":
        path = Path(path)
        if not path.is_file() or path.stat().st_size == 0:
            raise InputError(f"avatar file {path.name!r} is missing or empty")
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                if metadata.get("format") not in READABLE_FORMATS:
                    raise InputError(f"{path.name!r} is not a talking-head avatar (format "
                                     f"{metadata.get('format')!r}, expected {AVATAR_FORMAT!r})")
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError) as error:
            raise InputError(f"avatar file {path.name!r} is damaged or not a safetensors file ({error})") from error
        generator = PersonalGenerator(ModelConfig.from_dict(json.loads(metadata["config"])))
        state = {k.removeprefix("generator."): v for k, v in tensors.items() if k.startswith("generator.")}
        try:
            generator.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise InputError(f"avatar file {path.name!r} does not match its own config: {error}") from error
        bank = [tensors[k].numpy() if k in tensors else None for k in ("bank_crops", "bank_landmarks")]
        if generator.config.texture_path and any(part is None for part in bank):
            raise InputError(f"avatar file {path.name!r} has a texture-path generator but no texture bank")
        if bank[0] is not None:
            crops, points = bank
            side = BANK_IMAGE_SIZE
            if (crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[1:] != (side, side, 3) or points is None
                    or points.shape != (len(crops), 68, 2) or not np.isfinite(points).all() or len(crops) == 0):
                raise InputError(f"avatar file {path.name!r} has a malformed texture bank (need K {side}x{side} "
                                 f"RGB shots and their (K, 68, 2) landmarks)")
        return cls(generator.to(device).eval(), tensors["source_crop"].numpy(), tensors["source_landmarks"].numpy(),
                   tensors["photo"].numpy(), tuple(tensors["photo_box"].tolist()), json.loads(metadata["info"]),
                   *bank)
