"""Avatar files made and damaged inside the tests: a tiny avatar without photos, and its file rewritten
with other tensors or metadata (what a visitor could upload)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from talking_head.avatar import Avatar
from talking_head.config import ModelConfig
from talking_head.models import PersonalGenerator

Tensors = dict[str, torch.Tensor]
Metadata = dict[str, str]


def tiny_avatar(seed: int = 0) -> Avatar:
    """A texture-path avatar of the ``tiny`` size made without photos (random weights and pictures)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    points = rng.uniform(8, 24, (68, 2)).astype(np.float32)
    info = {"k": 1, "steps": 0, "weights": "tiny", "notes": ["photo.jpg: 2 faces found"], "seconds": 0.5,
            "device": "cpu", "finetune": {"steps": 0, "lr_generator": 5e-4, "amp": True, "vgg19": None}}
    return Avatar(PersonalGenerator(ModelConfig.named("tiny")).eval(), rng.integers(0, 256, (32, 32, 3), np.uint8),
                  points, rng.integers(0, 256, (48, 64, 3), np.uint8), (10.0, 5.0, 30.0), info,
                  rng.integers(0, 256, (1, 640, 640, 3), np.uint8), points[None] * 20)


def read(path: Path) -> tuple[Tensors, Metadata]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def rewritten(source: Path, path: Path, change: Callable[[Tensors, Metadata], None]) -> Path:
    """``source`` with its tensors and metadata changed by ``change`` (in place), saved as ``path``."""
    tensors, metadata = read(source)
    change(tensors, metadata)
    save_file(tensors, str(path), metadata=metadata)
    return path


def config_with(**fields: object) -> Callable[[Tensors, Metadata], None]:
    def change(tensors: Tensors, metadata: Metadata) -> None:
        metadata["config"] = json.dumps({**json.loads(metadata["config"]), **fields})
    return change


def _set_or_delete(mapping: dict, key: str, value: object | None) -> None:
    if value is None:
        del mapping[key]
    else:
        mapping[key] = value


def metadata_with(key: str, value: str | None) -> Callable[[Tensors, Metadata], None]:
    return lambda tensors, metadata: _set_or_delete(metadata, key, value)


def tensor_with(key: str, value: torch.Tensor | None) -> Callable[[Tensors, Metadata], None]:
    return lambda tensors, metadata: _set_or_delete(tensors, key, value)
