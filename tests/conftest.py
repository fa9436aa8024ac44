"""Shared fixtures: tiny models on CPU, deterministic."""

from __future__ import annotations

import pytest
import torch

from talking_head.config import ModelConfig
from talking_head.hub import TalkingHeadModel


@pytest.fixture
def tiny_config() -> ModelConfig:
    return ModelConfig.named("tiny", num_videos=4)


@pytest.fixture
def tiny_model(tiny_config: ModelConfig) -> TalkingHeadModel:
    torch.manual_seed(0)
    return TalkingHeadModel(tiny_config).eval()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory):
    """A small synthetic dataset (8 identities x 2 videos x 12 frames at 48 px), rendered once per session."""
    from talking_head.data.synthetic import SyntheticConfig, generate_dataset

    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root, num_identities=8, videos_per_identity=2,
                     config=SyntheticConfig(image_size=48, frames_per_video=12, heldout_fraction=0.25), progress=False)
    return root
