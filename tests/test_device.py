"""Precision and rendering runtime, decided in talking_head.device: the rules, the override, and what bf16
costs the bundled checkpoint's frames."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_golden import fixed_input

from talking_head import device as device_module
from talking_head.device import (BACKEND_ENV, PRECISION_ENV, Precision, autocast, describe_rendering, precision,
                                 rendering_backend)
from talking_head.generator_runtime import GeneratorRuntime
from talking_head.hub import BUNDLED_CHECKPOINT
from talking_head.models import PersonalGenerator
from talking_head.models.talking_head_model import TalkingHeadModel

CPU = torch.device("cpu")
FP32, BF16 = Precision(False, False, "test"), Precision(True, False, "test")
#: bf16 against float32 on the bundled checkpoint, in [-1, 1] units. Measured on the fixed input (G free
#: to paint anywhere, no paint region): frames differ by 7e-5 on average and 0.011 at most (1.4 8-bit
#: levels), G's painting alone by 0.0021 on average and 0.049 at most; the mask keeps most of it out.
FRAME_MEAN_TOLERANCE, FRAME_MAX_TOLERANCE = 5e-4, 0.03  # a mean far under one 8-bit level, at most 4 levels
PAINTING_MEAN_TOLERANCE = 5e-3


def with_flags(monkeypatch: pytest.MonkeyPatch, *flags: str) -> None:
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset(flags))


@pytest.mark.parametrize("flag", ["amx_bf16", "avx512_bf16"])
def test_a_cpu_with_a_bf16_unit_autocasts_and_says_why(monkeypatch: pytest.MonkeyPatch, flag: str) -> None:
    with_flags(monkeypatch, "avx2", flag)
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    chosen = precision(CPU)
    assert chosen.bf16 and flag in str(chosen)
    assert chosen.channels_last == (flag == "amx_bf16")  # it paid on the Xeon only
    with autocast(CPU):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_a_cpu_without_one_and_the_override_run_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    with_flags(monkeypatch, "avx2", "avx512f")
    assert not precision(CPU).bf16
    with autocast(CPU):
        assert not torch.is_autocast_enabled("cpu")
    with_flags(monkeypatch, "amx_bf16")
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    assert precision(CPU) == Precision(False, False, f"{PRECISION_ENV}=fp32")
    assert not precision(torch.device("cuda")).bf16
    with autocast(CPU):
        assert not torch.is_autocast_enabled("cpu")
    monkeypatch.setenv(PRECISION_ENV, "half")
    with pytest.raises(ValueError, match=PRECISION_ENV):
        precision(CPU)


def test_the_backend_rule_and_its_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    monkeypatch.setattr(device_module, "onnxruntime_installed", lambda: True)
    with_flags(monkeypatch, "avx512_bf16")
    assert rendering_backend(CPU) == "onnx" and "ONNX Runtime" in describe_rendering(CPU)
    with_flags(monkeypatch, "amx_bf16")  # the Xeon: torch bf16 beat ONNX Runtime
    assert rendering_backend(CPU) == "torch" and "bf16 autocast" in describe_rendering(CPU)
    assert rendering_backend(torch.device("cuda")) == "torch"
    monkeypatch.setenv(BACKEND_ENV, "torch")
    with_flags(monkeypatch, "avx512_bf16")
    assert rendering_backend(CPU) == "torch"
    monkeypatch.setattr(device_module, "onnxruntime_installed", lambda: False)
    monkeypatch.setenv(BACKEND_ENV, "auto")
    assert rendering_backend(CPU) == "torch"
    monkeypatch.setenv(BACKEND_ENV, "onnx")
    with pytest.raises(RuntimeError, match="onnxruntime"):
        rendering_backend(CPU)


@torch.no_grad()
def test_bf16_and_float32_frames_of_the_bundled_checkpoint_agree() -> None:
    model = TalkingHeadModel.from_pretrained(BUNDLED_CHECKPOINT).eval()
    picture, drawing = fixed_input()
    embedding = model.embedder.embed_person(picture, drawing)[None]
    personal = PersonalGenerator.from_generator(model.generator, model.generator.project(embedding), embedding,
                                                model.config)
    warped = F.interpolate(picture, size=256, mode="bilinear", align_corners=False)  # the default output size
    frames = {p: GeneratorRuntime(personal, "torch", p)(drawing, warped) for p in (FP32, BF16)}
    difference = (frames[BF16] - frames[FP32]).abs()
    assert 0 < difference.mean() <= FRAME_MEAN_TOLERANCE and difference.max() <= FRAME_MAX_TOLERANCE
    painted = personal.generator.paint(drawing, personal.psi, picture)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        painted_bf16 = personal.generator.paint(drawing, personal.psi, picture)[0]
    assert 0 < (painted_bf16.float() - painted).abs().mean() <= PAINTING_MEAN_TOLERANCE
