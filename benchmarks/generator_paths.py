"""The shipped generator rendering as the product renders it, through every path: frames/s and ratio to fp32.

Used by ``bench_generator.py`` (its first table). An avatar of the astronaut is personalised feed-forward
from the checkpoint, and a batch of its frames (the photo's landmarks moved a little, the shots warped
onto them at the output size, the paint region) is generated again and again by
``PersonalGenerator.generate`` with each path forced: torch float32 (the path before issue 17), bf16
autocast, each with channels_last, and ONNX Runtime float32. What is timed is the whole call: the area
downsample and the composite at the output size (torch, float32, the same in every path) included.

The paths are timed in turns (``rounds`` times each, ``seconds`` a turn) so that a neighbour's load
falls on all of them alike; frames/s is from the median batch time over all turns.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from unittest import mock

import numpy as np
import torch

from talking_head.device import Precision, describe_rendering, onnxruntime_installed
from talking_head.generator_runtime import GeneratorRuntime
from talking_head.onnx_backend import CACHE_ENV

#: Where the landmark targets' jitter comes from (reproducible inputs).
SEED = 0


@dataclass(frozen=True)
class RenderPath:
    name: str
    backend: str
    precision: Precision | None = None


PATHS = [
    RenderPath("torch fp32 (before issue 17)", "torch", Precision(False, False, "forced")),
    RenderPath("torch fp32 + channels_last", "torch", Precision(False, True, "forced")),
    RenderPath("torch bf16 autocast", "torch", Precision(True, False, "forced")),
    RenderPath("torch bf16 autocast + channels_last", "torch", Precision(True, True, "forced")),
    RenderPath("ONNX Runtime fp32", "onnx"),
]


def astronaut_batch(weights: str, batch: int, size: int):
    """The astronaut's avatar (feed-forward) and one batch of generator inputs for it at ``size`` px."""
    from skimage import data

    from talking_head.face_render import texture_for
    from talking_head.landmarks.rasterize import draw_landmarks
    from talking_head.pipeline import TalkingHeadPipeline
    from talking_head.shot_bank import paint_region
    from talking_head.tensors import images_to_tensor

    pipe = TalkingHeadPipeline.from_pretrained(weights, device="cpu", landmark_backend="dlib")
    avatar = pipe.personalize([data.astronaut()], steps=0)
    rng = np.random.default_rng(SEED)
    targets = (avatar.source_landmarks + rng.normal(0, 1.5, (batch, 68, 2))).astype(np.float32)
    drawings = images_to_tensor(np.stack([draw_landmarks(t, avatar.image_size) for t in targets]))
    region = paint_region(torch.from_numpy(targets * np.float32(size / avatar.image_size)), size)
    return avatar, (drawings, texture_for(avatar, targets, size), region)


def time_paths(weights: str, batch: int, size: int, seconds: float, rounds: int) -> list[str]:
    """Markdown lines: each path's frames/s, ratio to fp32 and difference from fp32's output (everywhere, and
    where G may paint: elsewhere every path returns the same warped pixels)."""
    paths = [p for p in PATHS if p.backend != "onnx" or onnxruntime_installed()]
    avatar, inputs = astronaut_batch(weights, batch, size)
    generator = avatar.generator
    lines = []
    # A fresh cache, so that the export is timed too.
    with tempfile.TemporaryDirectory() as cache, mock.patch.dict(os.environ, {CACHE_ENV: cache}):
        outputs, times = {}, {p.name: [] for p in paths}
        for path in paths:  # first call: the export for ONNX Runtime, warm-up for torch
            start = time.perf_counter()
            outputs[path.name] = GeneratorRuntime(generator, path.backend, path.precision)(*inputs)
            if path.backend == "onnx":
                lines.append(f"ONNX Runtime: export + load + check against torch {time.perf_counter() - start:.1f} s "
                             f"(once per generator's weights)")
        for _ in range(rounds):
            for path in paths:
                spent = 0.0
                while spent < seconds:
                    start = time.perf_counter()
                    GeneratorRuntime(generator, path.backend, path.precision)(*inputs)
                    times[path.name].append(time.perf_counter() - start)
                    spent += times[path.name][-1]
    reference = outputs[paths[0].name]
    base = batch / statistics.median(times[paths[0].name])
    lines += ["", f"| path (batch {batch}, {size} px output, {torch.get_num_threads()} threads) | frames/s | "
              "ratio to fp32 | mean abs diff vs fp32 (in the paint region) | max abs diff |", "|---|---|---|---|---|"]
    for path in paths:
        fps = batch / statistics.median(times[path.name])
        diff = (outputs[path.name] - reference).abs()
        inside = diff[(inputs[2] > 0).expand_as(diff)]
        lines.append(f"| {path.name} | {fps:.1f} | {fps / base:.2f}x | {diff.mean():.1e} ({inside.mean():.1e}) | "
                     f"{diff.max():.1e} |")
    lines += ["", f"Chosen automatically on this machine: {describe_rendering(torch.device('cpu'))}"]
    return lines


def onnx_op_profile(weights: str, batch: int, runs: int = 6) -> list[str]:
    """Markdown lines: where ONNX Runtime's time goes in the shipped generator's graph, by operator type (its own
    profiler, ``runs`` runs of a batch of the astronaut's inputs at the model's resolution, after one warm-up)."""
    import collections
    import json

    import onnxruntime

    from talking_head.onnx_backend import export_onnx

    avatar, (drawings, warped, _) = astronaut_batch(weights, batch, 128)
    generator = avatar.generator
    small = generator.generator.at_model_resolution(warped)
    with tempfile.TemporaryDirectory() as folder:
        graph = export_onnx(generator, os.path.join(folder, "paint.onnx"))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
        options.enable_profiling, options.profile_file_prefix = True, os.path.join(folder, "profile")
        session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        feeds = {"landmark_images": drawings.numpy(), "warped": small.numpy(), "psi": generator.psi.detach().numpy()}
        feeds = {i.name: feeds[i.name] for i in session.get_inputs()}
        session.run(None, feeds)
        for _ in range(runs):
            session.run(None, feeds)
        with open(session.end_profiling()) as file:
            events = json.load(file)
    per_op: collections.Counter[str] = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"]  # microseconds, the warm-up run included
    total = sum(per_op.values())
    lines = [f"| operator (ONNX Runtime, batch {batch}, {torch.get_num_threads()} threads) | share of kernel time | "
             "ms a frame |", "|---|---|---|"]
    for op, spent in per_op.most_common(10):
        lines.append(f"| {op} | {spent / total:.1%} | {spent / 1000 / (runs + 1) / batch:.2f} |")
    return lines
