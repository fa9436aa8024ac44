"""Rendering speed of the generator G, printed as markdown tables.

    python benchmarks/bench_generator.py [--tables paths onnx-ops sizes] [--weights checkpoints] [--output-size 256]
        [--rounds 3] [--sizes small paper] [--batch 1 8] [--seconds 2] [--threads 1 2]

``paths`` (first): the shipped checkpoint's personalised generator through every rendering path (torch
float32, bf16 autocast, channels_last, ONNX Runtime), each forced, with its ratio to float32, on the CPU
with the first ``--threads`` count and the last ``--batch`` (``generator_paths.py``).

``onnx-ops``: ONNX Runtime's own profile of the shipped generator's graph (the network at the model's
resolution, the astronaut's inputs): the share of its kernel time and the ms a frame of each operator type.

``sizes``: random weights of each model size, as below.

What is timed is what rendering a driving video costs once a person is personalised: G's forward pass
under ``torch.inference_mode`` with spectral norm baked into the weights
(``talking_head.models.blocks.bake_spectral_norm``) and the AdaIN parameters psi computed once (so the
projection P is not in the loop). Weights are random: speed does not depend on their values.

Rows per device: CPU in float32 (contiguous and channels_last) for each ``--threads`` count; CUDA,
when available, in float32 (TF32 convolutions, PyTorch's default) and under autocast bfloat16/float16,
each contiguous and channels_last, with ``cudnn.benchmark`` on (a video renders one shape many times).
"max abs diff" is the largest difference from the float32 contiguous output on the same device, in the
output's [-1, 1] range: what a faster variant costs in accuracy.

The first line times a reference convolution (about 8 ms with 2 threads on an idle 2-core machine of
this project): when it is much slower, other jobs shared the CPU and the table is pessimistic. On a
busy 2-core machine one thread can beat two (two threads wait on each other when a core is taken).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from generator_paths import onnx_op_profile, time_paths
from talking_head.config import MODEL_SIZES, ModelConfig
from talking_head.device import BF16_CPU_FLAGS, cpu_flags, onnxruntime_installed
from talking_head.models import Discriminator, Embedder, Generator
from talking_head.models.blocks import bake_spectral_norm


@dataclass(frozen=True)
class Variant:
    """One way of running G: autocast dtype (None: float32) and memory format."""

    amp: torch.dtype | None = None
    channels_last: bool = False

    @property
    def name(self) -> str:
        precision = {None: "fp32", torch.bfloat16: "AMP bf16", torch.float16: "AMP fp16"}[self.amp]
        return precision + (" channels_last" if self.channels_last else "")


CPU_VARIANTS = [Variant(), Variant(channels_last=True)]
CUDA_VARIANTS = [Variant(amp, channels_last) for amp in (None, torch.bfloat16, torch.float16)
                 for channels_last in (False, True)]


@dataclass(frozen=True)
class Timing:
    frames_per_second: float
    ms_per_batch: float
    max_abs_diff: float


def parameter_counts(config: ModelConfig) -> dict[str, int]:
    """Parameters of E, G (and G's projection P, which maps an embedding to psi) and D."""
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    generator = Generator(config)
    return {"E": count(Embedder(config)), "G": count(generator), "of which P": count(generator.projection),
            "D": count(Discriminator(config))}


def gflops_per_frame(config: ModelConfig) -> float:
    """Convolution and matmul work of one rendered frame (2 FLOPs per multiply-add), counted by PyTorch."""
    generator, landmarks, psi = render_setup(config, 1, torch.device("cpu"))
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        generator(landmarks, psi=psi)
    return counter.get_total_flops() / 1e9


def reference_conv_ms(repeats: int = 10) -> float:
    """A 3x3 convolution 64->64 on 1x64x128x128 on the CPU: about 8 ms with 2 threads on an idle 2-core
    machine of this project (FACTS.md), so it tells how loaded the CPU was while the table was made."""
    conv, x = torch.nn.Conv2d(64, 64, 3, padding=1).eval(), torch.randn(1, 64, 128, 128)
    times = []
    with torch.inference_mode():
        conv(x)
        for _ in range(repeats):
            start = time.perf_counter()
            conv(x)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def render_setup(config: ModelConfig, batch: int, device: torch.device) -> tuple[Generator, torch.Tensor, torch.Tensor]:
    """A baked, eval-mode G on ``device``, a batch of landmark images and one person's psi."""
    torch.manual_seed(0)
    generator = bake_spectral_norm(Generator(config).eval()).to(device)
    landmarks = torch.rand(batch, config.landmark_channels, config.image_size, config.image_size,
                           device=device) * 2 - 1
    with torch.inference_mode():
        psi = generator.project(torch.randn(1, config.embedding_dim, device=device))
    return generator, landmarks, psi


def time_variant(generator: Generator, landmarks: torch.Tensor, psi: torch.Tensor, variant: Variant,
                 seconds: float, reference: torch.Tensor | None) -> tuple[Timing, torch.Tensor]:
    """Frames/s of ``variant`` from the median batch time over at least ``seconds`` (and at least one batch,
    after warm-up batches). The median, not the mean: on a shared CPU it ignores batches slowed by other jobs."""
    device = landmarks.device
    memory_format = torch.channels_last if variant.channels_last else torch.contiguous_format
    generator = generator.to(memory_format=memory_format)
    landmarks = landmarks.contiguous(memory_format=memory_format)
    autocast = (torch.autocast(device.type, dtype=variant.amp) if variant.amp is not None
                else contextlib.nullcontext())
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def forward() -> torch.Tensor:
        with torch.inference_mode(), autocast:
            return generator(landmarks, psi=psi)

    for _ in range(3 if device.type == "cuda" else 1):  # warm-up: cuDNN autotuning, allocator, kernel loading
        output = forward().float()
    synchronize()
    times: list[float] = []
    while not times or sum(times) < seconds:
        start = time.perf_counter()
        forward()
        synchronize()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    diff = 0.0 if reference is None else (output - reference).abs().max().item()
    return Timing(landmarks.shape[0] / median, 1000 * median, diff), output


def load_average() -> str:
    """The 1-minute load average: above the core count, other jobs shared the CPU during the run."""
    return Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "unknown"


def machine_line(threads: list[int]) -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                    if line.startswith("model name")), cpu)
    reference = []
    for n in threads:
        torch.set_num_threads(n)
        reference.append(f"{reference_conv_ms():.1f} ms with {n} thread{'s' * (n > 1)}")
    flags = [flag for flag in ("avx2", "avx512f", *BF16_CPU_FLAGS) if flag in cpu_flags()]
    line = (f"CPU: {cpu}, {os.cpu_count()} cores, flags {' '.join(flags) or 'none of avx2/avx512f/bf16'} "
            f"(reference 3x3 conv 64->64 at 128x128: {', '.join(reference)}); load average {load_average()}; "
            f"torch {torch.__version__}")
    if onnxruntime_installed():
        line += f", onnxruntime {importlib.metadata.version('onnxruntime')}"
    if torch.cuda.is_available():
        line += (f"; GPU: {torch.cuda.get_device_name()} (CUDA {torch.version.cuda}, "
                 f"cuDNN {torch.backends.cudnn.version()}, TF32 convolutions "
                 f"{'on' if torch.backends.cudnn.allow_tf32 else 'off'})")
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="+", choices=["paths", "onnx-ops", "sizes"], default=["paths", "sizes"])
    parser.add_argument("--weights", default="checkpoints", help="the checkpoint the paths table renders")
    parser.add_argument("--output-size", type=int, default=256, help="output size of the paths table, px")
    parser.add_argument("--rounds", type=int, default=3, help="turns of every path in the paths table")
    parser.add_argument("--sizes", nargs="+", default=["small", "paper"], choices=sorted(MODEL_SIZES))
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per row (after a warm-up)")
    parser.add_argument("--threads", nargs="+", type=int, default=[2], help="torch CPU thread counts to try")
    parser.add_argument("--devices", nargs="+", choices=["cpu", "cuda"],
                        default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    args = parser.parse_args()
    if "cuda" in args.devices and not torch.cuda.is_available():
        parser.error("--devices cuda: no CUDA device is available")
    torch.backends.cudnn.benchmark = True  # a video renders one shape over and over: let cuDNN pick kernels

    print(machine_line(args.threads) + "\n")
    torch.set_num_threads(args.threads[0])
    if "paths" in args.tables:
        print("\n".join(time_paths(args.weights, args.batch[-1], args.output_size, args.seconds, args.rounds)))
        print(f"\nload average at the end: {load_average()}\n")
    if "onnx-ops" in args.tables:
        print("\n".join(onnx_op_profile(args.weights, args.batch[-1])) + "\n")
    if "sizes" in args.tables:
        sizes_tables(args)


def sizes_tables(args: argparse.Namespace) -> None:
    """Parameter counts and GFLOP per frame of each size, then frames/s of G with random weights."""
    print("| size | resolution | E params | G params | of which P | D params (1 video) | G GFLOP/frame |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        config = ModelConfig.named(size)
        counts = " | ".join(f"{n / 1e6:.2f} M" for n in parameter_counts(config).values())
        print(f"| {size} | {config.image_size} | {counts} | {gflops_per_frame(config):.2f} |")

    # (device, CPU threads): every CPU thread count, then the GPU (whose host thread count hardly matters).
    targets = [("cpu", n) for n in args.threads if "cpu" in args.devices]
    targets += [("cuda", args.threads[0])] if "cuda" in args.devices else []
    print("\n| size | device | variant | batch | frames/s | median ms/batch | max abs diff vs fp32 |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        config = ModelConfig.named(size)
        for device_name, threads in targets:
            torch.set_num_threads(threads)
            device = torch.device(device_name)
            label = f"cpu, {threads} thread{'s' * (threads > 1)}" if device_name == "cpu" else device_name
            for batch in args.batch:
                generator, landmarks, psi = render_setup(config, batch, device)
                reference = None
                for variant in CUDA_VARIANTS if device.type == "cuda" else CPU_VARIANTS:
                    timing, output = time_variant(generator, landmarks, psi, variant, args.seconds, reference)
                    reference = output if reference is None else reference
                    print(f"| {size} | {label} | {variant.name} | {batch} | {timing.frames_per_second:.1f} | "
                          f"{timing.ms_per_batch:.1f} | {timing.max_abs_diff:.1e} |", flush=True)
                del generator, landmarks, psi
                if device.type == "cuda":
                    torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
