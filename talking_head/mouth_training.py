"""Meta-learning the mouth-window generator on synthetic talking heads (``python -m talking_head train-mouth``).

The paper's stage 1 for the mouth's window only (``talking_head.mouth_window``): from a synthetic video, K shots
of its first half and targets of its second half whose mouths are open; each target's texture is the shots warped
onto it (``shot_bank.warp_from_bank``, the warp ``animate`` renders with); G learns to repaint the mouth's window
from that warp, the target's landmarks and psi = P e, e being the shipped embedder's embedding of the K shots (E
stays as shipped). The windows are made once and kept in the run folder; training resumes from its last state.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from talking_head.config import mouth_model
from talking_head.data.synthetic import identities_of, render_video
from talking_head.errors import InputError
from talking_head.landmarks.detect import get_detector
from talking_head.models.talking_head_model import TalkingHeadModel
from talking_head.losses import ssim
from talking_head.models import Embedder, Generator
from talking_head.mouth_finetune import L1_WEIGHT, WindowBatch, embed, mouth_loss, video_windows
from talking_head.options import option, required
from talking_head.train import load_optimizer, optimizer_tensors


@dataclass(frozen=True)
class MouthTrainOptions:
    run: str = required("run folder: the episodes' windows and the training state are kept there (resumable)")
    weights: str = option("checkpoints", "the shipped weights: their embedder embeds the shots")
    videos: int = option(240, "synthetic training videos (identities of the train split, one video each)")
    frames: int = option(40, "frames a video: shots from its first half, targets from its second")
    image_size: int = option(256, "the videos' size, the output size whose mouth windows G learns")
    ks: tuple[int, ...] = option((1, 2, 4, 8), "K shots of each video, in turn")
    targets: int = option(12, "open-mouthed targets a video")
    heldout_videos: int = option(12, "videos of held-out identities, scored (never trained on)")
    steps: int = option(3000, "optimiser steps in all (a resumed run continues to this)")
    batch_size: int = option(16, "windows a step")
    lr: float = option(2e-4, "Adam's learning rate")
    seed: int = option(0, "seed of the shots, targets and batches")
    save_every: int = option(200, "steps between saved states (and held-out scores)")
    landmarks: str = option("exact", "the windows' landmarks: the synthetic renderer's exact ones, or dlib's found on "
                            "each frame (as the app and evaluate --clip see a video; exact where dlib finds no face)",
                            choices=["exact", "dlib"])
    start: str = option("new", "what a new run trains: a new generator, or the --weights folder's own mouth "
                        "generator", choices=["new", "weights"])


#: The windows' tensors as stored in a run folder (half precision: a few hundred MB for thousands of windows).
STORED = ("drawn", "warped", "real", "region")
GENERATOR_FILE = "mouth_generator.safetensors"
STATE_FILE = "mouth_training_state.safetensors"


def _episodes(folder: Path, identities: list[int], options: MouthTrainOptions, embedder: Embedder,
              chunk: int = 20) -> tuple[WindowBatch, torch.Tensor]:
    """The windows of one video of each identity and the videos' embeddings, made once and kept in ``folder``
    in chunks of ``chunk`` videos (an interrupted run makes only the chunks it lacks)."""
    folder.mkdir(parents=True, exist_ok=True)
    batches, embeddings = [], []
    for start in range(0, len(identities), chunk):
        path = folder / f"chunk-{start:05d}.safetensors"
        if not path.exists():
            _write_chunk(path, identities[start:start + chunk], start, options, embedder)
        tensors = load_file(str(path))
        batches.append(WindowBatch(*(tensors[name] for name in STORED), tensors["person"]))
        embeddings.append(tensors["embeddings"])
    return WindowBatch.cat(batches), torch.cat(embeddings)


def _write_chunk(path: Path, identities: list[int], first: int, options: MouthTrainOptions, embedder: Embedder
                 ) -> None:
    batches, embeddings = [], []
    for offset, identity in enumerate(identities):
        rng = np.random.default_rng([options.seed, identity])
        frames, points = render_video(identity, 0, options.frames, options.image_size)
        if options.landmarks == "dlib":
            points = found_landmarks(frames, points)
        k = options.ks[(first + offset) % len(options.ks)]
        made = video_windows(frames, points, k, options.targets, first + offset,
                            mouth_model(embedder.config).image_size, rng)
        shots = made[1] if made else np.arange(1)
        embeddings.append(embed(embedder, frames[shots], points[shots]))
        if made:
            batches.append(made[0])
    if not batches:
        raise ValueError(f"no open mouth in the second half of the videos of identities {identities}: nothing to "
                         f"learn from; use more --frames")
    windows = WindowBatch.cat(batches)
    tensors = {name: getattr(windows, name).half().contiguous() for name in STORED}
    save_file({**tensors, "person": windows.person, "embeddings": torch.cat(embeddings)},
              str(path.with_suffix(".partial")))
    os.replace(path.with_suffix(".partial"), path)


def found_landmarks(frames: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """dlib's landmarks on each of (T, S, S, 3) ``frames``, ``exact``'s (T, 68, 2) where it finds no face.

    The exact landmarks taught the window's generator to paint teeth where they truly are; on a video it gets
    dlib's, a few pixels off, and there it lost to the warp (``evaluate --clip``). Windows cut and warped at the
    found landmarks, their truth the real frame, teach it to paint through that noise."""
    detector = get_detector("dlib")
    points = np.array(exact, np.float32, copy=True)
    for index, frame in enumerate(frames):
        found = detector.detect(frame)
        if found:
            points[index] = found[0].landmarks
    return points


def _as_float(batch: WindowBatch) -> WindowBatch:
    return WindowBatch(*(getattr(batch, name).float() for name in STORED), batch.person)


@torch.no_grad()
def heldout_scores(generator: Generator, windows: WindowBatch, embeddings: torch.Tensor) -> dict[str, float]:
    """Mean loss and SSIM of G's windows and of the warp's alone, on windows never trained on."""
    generator.eval()
    scores = {"loss": 0.0, "warp_loss": 0.0, "ssim": 0.0, "warp_ssim": 0.0}
    for start in range(0, len(windows), 64):
        batch = _as_float(windows.rows(torch.arange(start, min(start + 64, len(windows)))))
        out = generator(batch.drawn, psi=generator.project(embeddings[batch.person]), warped=batch.warped,
                        paint_region=batch.region)
        share = len(batch) / len(windows)
        for name, image in (("", out), ("warp_", batch.warped)):
            region = batch.region.expand_as(image)
            l1 = ((image - batch.real).abs() * region).sum() / region.sum().clamp_min(1.0)
            similarity = ssim(image, batch.real)
            scores[name + "loss"] += share * float(L1_WEIGHT * l1 + 1 - similarity)
            scores[name + "ssim"] += share * float(similarity)
    generator.train()
    return scores


def train_mouth(options: MouthTrainOptions, log: Callable[[str], None] = print) -> Path:
    """Meta-learn the mouth generator; returns the saved generator's path (``run/GENERATOR_FILE``)."""
    run = Path(options.run)
    shipped = TalkingHeadModel.from_pretrained(options.weights)
    embedder = shipped.embedder.eval()
    generator = _first_generator(shipped, options.start).train()
    train = _episodes(run / "train", identities_of("train", options.videos), options, embedder)
    heldout = _episodes(run / "heldout", identities_of("heldout", options.heldout_videos), options, embedder)
    optimizer = torch.optim.Adam(generator.parameters(), lr=options.lr, betas=(0.5, 0.999))
    step = _resume(run, generator, optimizer)
    rng = np.random.default_rng([options.seed, step])
    windows, embeddings = train
    while step < options.steps:
        batch = _as_float(windows.rows(torch.as_tensor(rng.choice(len(windows), options.batch_size, replace=False))))
        optimizer.zero_grad(set_to_none=True)
        loss = mouth_loss(generator, generator.project(embeddings[batch.person]), batch)
        loss.backward()
        optimizer.step()
        step += 1
        if step % options.save_every == 0 or step == options.steps:
            scores = heldout_scores(generator, *heldout)
            log(json.dumps({"step": step, "train_loss": round(loss.item(), 4),
                            **{f"heldout_{k}": round(v, 4) for k, v in scores.items()}}))
            _save(run, generator, optimizer, step)
    return run / GENERATOR_FILE


def _first_generator(shipped: TalkingHeadModel, start: str) -> Generator:
    """A new mouth generator, or (``start`` "weights") the shipped weights' own, in float32."""
    if start == "new":
        return Generator(mouth_model(shipped.embedder.config))
    if shipped.mouth is None:
        raise InputError("--start weights: these weights have no mouth generator to train on")
    return shipped.mouth.float()


def _save(run: Path, generator: Generator, optimizer: torch.optim.Optimizer, step: int) -> None:
    """The generator and the optimiser's state, each written atomically (no pickles)."""
    tensors, groups = optimizer_tensors(optimizer, "adam")
    for name, content, metadata in ((GENERATOR_FILE, generator.state_dict(), {"config": json.dumps(
            generator.config.to_dict())}), (STATE_FILE, tensors, {"step": str(step), "adam.param_groups": groups})):
        partial = run / (name + ".partial")
        save_file({k: v.detach().contiguous() for k, v in content.items()}, str(partial), metadata=metadata)
        os.replace(partial, run / name)


def _resume(run: Path, generator: Generator, optimizer: torch.optim.Optimizer) -> int:
    """The step a run in ``run`` continues from (0: a new run), its generator and optimiser restored."""
    if not (run / STATE_FILE).exists():
        return 0
    generator.load_state_dict(load_file(str(run / GENERATOR_FILE)))
    with safe_open(str(run / STATE_FILE), framework="pt") as f:
        metadata = f.metadata()
        load_optimizer(optimizer, "adam", {k: f.get_tensor(k) for k in f.keys()},  # noqa: SIM118
                       metadata["adam.param_groups"])
    return int(metadata["step"])
