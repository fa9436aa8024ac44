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
