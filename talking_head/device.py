"""Device, precision, memory layout and rendering runtime, chosen in one place (no ``.cuda()`` anywhere else).

Two environment variables override the automatic choices, for every command, the app and training alike:

- ``TALKING_HEAD_PRECISION``: ``auto`` (default) or ``fp32`` (never autocast: reproducible float32 numbers);
- ``TALKING_HEAD_BACKEND``: ``auto`` (default), ``torch`` or ``onnx``: what runs a personalised generator
  (``talking_head.onnx_backend``).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch

PRECISION_ENV, PRECISIONS = "TALKING_HEAD_PRECISION", ("auto", "fp32")
BACKEND_ENV, BACKENDS = "TALKING_HEAD_BACKEND", ("auto", "torch", "onnx")

#: CPU flags under which torch's bf16 autocast measured faster than float32 (the shipped ``small``
#: generator, batch 8, 2 threads):
#:
#: - ``amx_bf16``: a 2-core Xeon (AMX tiles): rendering 40 -> 88 frames/s (115 with channels_last), a
#:   training step 0.57 -> 0.29 s (../shared/FACTS.md, 2026-12-01, idle machine);
#: - ``avx512_bf16``: a 2-core AMD EPYC without AMX (AVX-512 ``vdpbf16ps``): rendering 1.39-2.31x float32
#:   in four runs on a loaded machine (``benchmarks/results/generator_paths_epyc.md``).
#:
#: A CPU with neither emulates bf16 in float32 arithmetic plus conversions: slower than float32.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available on this machine")
    return device


@functools.cache
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags as Linux lists them (empty where /proc/cpuinfo cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    return frozenset(next((line.split(":", 1)[1].split() for line in text.splitlines()
                           if line.startswith("flags")), []))


def _setting(variable: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(variable, "auto").strip().lower() or "auto"
    if value not in choices:
        raise ValueError(f"{variable}={value!r}: expected one of {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class Precision:
    """How a device runs the networks: bf16 autocast or float32, and the activations' memory layout."""

    bf16: bool
    channels_last: bool
    reason: str  # why, for whoever reads the report

    def __str__(self) -> str:
        name = "bf16 autocast" if self.bf16 else "float32"
        return f"{name}{' + channels_last' if self.channels_last else ''} ({self.reason})"


def precision(device: torch.device) -> Precision:
    """bf16 autocast on CUDA and on CPUs with a flag in ``BF16_CPU_FLAGS``, else float32;
    ``TALKING_HEAD_PRECISION=fp32`` forces float32 everywhere.

    channels_last only where it measured faster: on the AMX Xeon (bf16 88 -> 115 frames/s). On the
    EPYC, under bf16, it was slower than contiguous in 2 runs of 4 and within 3% in the others; on CUDA
    it is unmeasured, so off.
    """
    if _setting(PRECISION_ENV, PRECISIONS) == "fp32":
        return Precision(False, False, f"{PRECISION_ENV}=fp32")
    if device.type == "cuda":
        return Precision(True, False, "CUDA")
    found = [flag for flag in BF16_CPU_FLAGS if flag in cpu_flags()]
    if device.type == "cpu" and found:
        return Precision(True, found[0] == "amx_bf16", f"CPU flag {found[0]}")
    return Precision(False, False, f"no bf16 unit on this {device.type}")


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast (no loss scaling needed) where ``precision`` says it pays; else a no-op."""
    if enabled and precision(device).bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def onnxruntime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def rendering_backend(device: torch.device) -> str:
    """``onnx`` or ``torch``: what runs a personalised generator on ``device`` (``TALKING_HEAD_BACKEND``
    overrides; ``onnx`` needs onnxruntime and a CPU).

    Automatic choice, from one-process side-by-side measurements (``benchmarks/bench_generator.py``):
    ONNX Runtime on a CPU without AMX when installed (on the EPYC with ``avx512_bf16``, four runs on a
    loaded machine: 2.07-5.68x torch float32, first in every run, 1.2x bf16 autocast at 1 thread); torch
    elsewhere (on the AMX Xeon torch bf16 + channels_last ran at 115 frames/s against ONNX Runtime's 79;
    on CUDA ONNX Runtime's CPU build is no contender).
    """
    choice = _setting(BACKEND_ENV, BACKENDS)
    usable = device.type == "cpu" and onnxruntime_installed()
    if choice == "onnx" and not usable:
        raise RuntimeError(f"{BACKEND_ENV}=onnx needs the onnxruntime package and a CPU device (pip install "
                           f"'talking-head[onnx]'; device: {device})")
    if choice != "auto":
        return choice
    return "onnx" if usable and "amx_bf16" not in cpu_flags() else "torch"


def describe_rendering(device: torch.device) -> str:
    """One line for the app's notes and the CLI: what runs the generator, in which precision, and why."""
    if rendering_backend(device) == "onnx":
        return "ONNX Runtime, float32 (faster than torch on this CPU)"
    return f"torch on {device.type}, {precision(device)}"
