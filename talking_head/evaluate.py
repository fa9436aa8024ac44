"""``python -m talking_head evaluate``: the paper's few-shot self-reenactment protocol, K = 1, 8, 32.

For each held-out identity, one video: its first half gives the K shots (spread evenly over it), its
second half the T target frames. The model sees the K shots, is fine-tuned on them for each number of
``--steps`` (0 = the paper's feed-forward mode), and renders every target from the target's own
landmarks; the warp baseline (``baseline.py``) does the same without learning. Each rendering is
compared with the real target frame (``metrics.py``): SSIM, PSNR, CSIM, landmark distance (and how
often dlib finds a face at all). Everything runs at the model's resolution.

The data is either a dataset folder (``--data``: ``preprocess`` or ``synthesize`` output, its
held-out split) or, by default, synthetic held-out identities rendered for the run. Only one
identity's frames are in memory at a time.

Here the numbers are measured and summarised (a row per method and K: means, standard errors and the
paired difference from the warp baseline); ``evaluate_report`` writes them into ``--out``: ``results.md``
(the paper's table layout: a row per method and K, a column per metric), ``results.json`` (the same
numbers with standard errors, the options and the model's provenance), ``metrics_vs_k.png`` /
``metrics_vs_steps.png`` and ``samples.png`` (the first identity's targets as every method and K
rendered them: the pictures behind the numbers, at no extra cost).
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from talking_head.baseline import warp_baseline
from talking_head.config import PAPER_KS
from talking_head.data.format import VideoRecord, read_frames, read_index, video_path, write_index, write_video
from talking_head.data.synthetic import SyntheticConfig, identity_split, render_video
from talking_head.finetune import FinetuneConfig, personalize
from talking_head.generator_runtime import GeneratorRuntime
from talking_head.hub import load_model
from talking_head.landmarks.mouth import mouth_opening
from talking_head.metrics import cosine, face_descriptor, landmark_distance, psnr, ssim
from talking_head.models.talking_head_model import TalkingHeadModel
from talking_head.options import option
from talking_head.shot_bank import paint_region, warp_from_bank
from talking_head.tensors import tensor_to_images, to_network

log = logging.getLogger(__name__)

#: Metric name -> (table header, higher is better).
METRICS = {"ssim": ("SSIM", True), "psnr": ("PSNR (dB)", True), "csim": ("CSIM", True),
           "landmark_distance": ("LMD", False), "detected": ("face found", True),
           "mouth_ssim": ("mouth SSIM, newly open", True)}
#: The columns each model row is also compared on target by target with the warp baseline at its K.
#: The baseline and the model render the same targets, so their difference has its own, smaller
#: standard error: per-method errors mostly measure how hard the targets are, not who renders better.
PAIRED = ("ssim", "psnr", "landmark_distance", "mouth_ssim")
#: A mouth is open when its inner lips are this many inter-ocular distances apart. The mouth column
#: scores only targets whose mouth is open while no shot's is: what no warp of a shot can show.
MOUTH_OPEN = 0.12
BASELINE, FEED_FORWARD, FINE_TUNED = "warp baseline", "feed-forward", "fine-tuned"


#: The fine-tuned column compared with feed-forward: the paper's stage 2 at the length the app once
#: defaulted to (it now defaults to feed-forward, ``FinetuneConfig.steps``).
COMPARED_STEPS = 40


@dataclass
class EvaluateOptions:
    out: str = option("runs/eval", "folder for results.md, results.json and the plots")
    weights: str | None = option(None, "checkpoint folder or Hub repo id; none: the Hub model, else the bundled one")
    data: str | None = option(None, "dataset folder to take videos from; none: render synthetic held-out "
                                    "identities")
    split: str = option("heldout", "split of --data to evaluate on")
    identities: int = option(10, "identities to evaluate (one video each)")
    ks: tuple[int, ...] = option(PAPER_KS, "K values: how many shots the model gets")
    steps: tuple[int, ...] = option((0, COMPARED_STEPS), "fine-tuning steps to compare (0 = feed-forward)")
    targets: int = option(16, "T: target frames per identity")
    clip_frames: int = option(64, "length of the rendered synthetic clips (shots come from the first half, "
                                  "targets from the second)")
    synthetic_seed: int = option(0, "seed of the synthetic identities (that of the training set)")
    heldout_fraction: float = option(0.1, "held-out share of the synthetic training set (at most the one it "
                                          "was made with, so these identities were never trained on)")
    keep_rendered: str | None = option(None, "keep the rendered synthetic clips in this folder; none: a "
                                             "temporary one")
    lr_generator: float = option(FinetuneConfig.lr_generator, "fine-tuning learning rate of G' and psi' (the app's "
                                 "default suits its few dozen steps; a few hundred steps can afford more)")
    batch_size: int = option(FinetuneConfig.batch_size, "fine-tuning shots per step (at most K)")
    seed: int = option(0, "fine-tuning seed")
    device: str = option("auto", "auto, cpu, cuda, ...")
    threads: int = option(0, "torch CPU threads (0 = torch's default)")


# ------------------------------------------------------------------------------------------ data
def min_frames(ks: tuple[int, ...], targets: int) -> int:
    """The shortest video ``frame_plan`` accepts: the largest K in its first half, the targets in the second."""
    return max(2 * max(ks), 2 * targets)


def frame_plan(num_frames: int, ks: tuple[int, ...], targets: int) -> tuple[dict[int, list[int]], list[int]]:
    """Shot indices per K, spread over the video's first half, and target indices spread over its second.

    Each K's shots depend only on the video and K, so adding a K to a run leaves the others' numbers alone.
    """
    if num_frames < min_frames(ks, targets):
        raise ValueError(f"a video of {num_frames} frames is too short for K up to {max(ks)} and {targets} targets "
                         f"(needs {min_frames(ks, targets)})")
    half = num_frames // 2
    shots = {k: np.linspace(0, half - 1, k).round().astype(int).tolist() for k in ks}
    return shots, np.linspace(half, num_frames - 1, targets).round().astype(int).tolist()


def render_heldout(root: Path, identities: int, num_frames: int, image_size: int, seed: int,
                   heldout_fraction: float) -> list[VideoRecord]:
    """Render the first ``identities`` held-out synthetic identities (one clip each) into ``root``.

    Only held-out identities are rendered (``generate_dataset`` renders every identity up to a count,
    ten times the work here); names and splits are the ones ``generate_dataset`` gives them.
    """
    config = SyntheticConfig(image_size=image_size, frames_per_video=num_frames, seed=seed,
                             heldout_fraction=heldout_fraction)
    chosen, identity = [], 0
    while len(chosen) < identities:
        if identity_split(identity, config) == "heldout":
            chosen.append(identity)
        identity += 1
    for identity in tqdm(chosen, desc="rendering held-out identities", unit="identity", leave=False):
        if not video_path(root, f"syn{identity:05d}", "v00").exists():
            frames, landmarks = render_video(identity, 0, num_frames, image_size, seed)
            write_video(root, f"syn{identity:05d}", "v00", frames, landmarks, split="heldout", source="synthetic")
    return write_index(root, image_size)


def pick_videos(records: list[VideoRecord], split: str, identities: int, num_frames: int) -> list[VideoRecord]:
    """The first long-enough video of each of the first ``identities`` people of ``split``."""
    chosen: dict[str, VideoRecord] = {}
    for record in records:
        if record.split == split and record.num_frames >= num_frames and record.person not in chosen:
            chosen[record.person] = record
    if not chosen:
        raise ValueError(f"no {split!r} video has the {num_frames} frames this protocol needs "
                         f"(twice the largest K and twice --targets)")
    if len(chosen) < identities:
        log.warning("only %d %r identities have videos of %d frames or more", len(chosen), split, num_frames)
    return list(chosen.values())[:identities]


# ------------------------------------------------------------------------------------ evaluation
@dataclass(frozen=True)
class Method:
    """One row family of the table: the baseline (``steps`` None) or the model after ``steps`` steps."""

    name: str
    steps: int | None

    @classmethod
    def model(cls, steps: int) -> Method:
        return cls(FEED_FORWARD if steps == 0 else FINE_TUNED, steps)

    def label(self, k: int) -> str:
        extra = f", {self.steps} steps" if self.name == FINE_TUNED else ""
        return f"{self.name.capitalize()}{extra} ({k})"


def mouth_ssim(generated: np.ndarray, real: np.ndarray, landmarks: np.ndarray) -> float:
    """SSIM inside the lips' box, grown by half its size on every side (at least 16 px a side)."""
    lips = np.asarray(landmarks, np.float64)[48:68]
    centre, half = lips.mean(0), np.maximum((lips.max(0) - lips.min(0)), 16.0)
    (x0, y0), (x1, y1) = np.floor(centre - half).astype(int).clip(0), np.ceil(centre + half).astype(int)
    return ssim(generated[y0:y1, x0:x1], real[y0:y1, x0:x1])


def frame_scores(generated: np.ndarray, real: np.ndarray, landmarks: np.ndarray, real_descriptor: np.ndarray,
                 mouth_newly_open: bool = False) -> dict[str, float]:
    distance = landmark_distance(generated, landmarks)
    return {"ssim": ssim(generated, real), "psnr": psnr(generated, real),
            "csim": cosine(face_descriptor(generated, landmarks), real_descriptor),
            "landmark_distance": distance, "detected": float(not math.isnan(distance)),
            "mouth_ssim": mouth_ssim(generated, real, landmarks) if mouth_newly_open else math.nan}


def evaluate_video(model: TalkingHeadModel, frames: np.ndarray, landmarks: np.ndarray, shots: dict[int, list[int]],
                   targets: list[int], steps: tuple[int, ...], finetune: FinetuneConfig,
                   tick: Callable[[], None] = lambda: None,
                   renderings: dict[tuple[Method, int], np.ndarray] | None = None
                   ) -> dict[tuple[Method, int], list[dict[str, float]]]:
    """Scores of every (method, K) on the targets of one video, given as uint8 frames at the model's size.

    ``renderings``, when given, receives every (method, K)'s rendered targets.
    """
    net_frames, net_drawings = to_network(frames, landmarks, model.config.image_size)
    points = torch.from_numpy(np.asarray(landmarks, np.float32))
    real_descriptors = [face_descriptor(frames[t], landmarks[t]) for t in targets]
    opening = mouth_opening(landmarks)
    scores: dict[tuple[Method, int], list[dict[str, float]]] = {}

    def score(method: Method, k: int, generated: np.ndarray) -> None:
        newly_open = opening[targets] > MOUTH_OPEN if opening[shots[k]].max() <= MOUTH_OPEN else [False] * len(targets)
        scores[method, k] = [frame_scores(g, frames[t], landmarks[t], d, bool(o))
                             for g, t, d, o in zip(generated, targets, real_descriptors, newly_open)]
        if renderings is not None:
            renderings[method, k] = generated
        tick()

    for k, shot_indices in shots.items():
        score(Method(BASELINE, None), k, np.stack([warp_baseline(frames[shot_indices], landmarks[shot_indices],
                                                                  landmarks[t]) for t in targets]))
        warped = region = None
        if model.config.texture_path:
            warped = warp_from_bank(net_frames[shot_indices], points[shot_indices], points[targets], frames.shape[1])
            region = paint_region(points[targets], frames.shape[1])
        for n in steps:
            avatar = personalize(model, net_frames[shot_indices], net_drawings[shot_indices], points[shot_indices],
                                 replace(finetune, steps=n))
            # A fine-tuned avatar has weights of its own: exporting them for ONNX Runtime (1-10 s) to render a
            # few targets would cost more than torch rendering them, and fill the graph cache.
            backend = "torch" if n > 0 else None
            runtime = GeneratorRuntime(avatar, backend)
            score(Method.model(n), k, tensor_to_images(runtime(net_drawings[targets], warped, region)))
    return scores


# --------------------------------------------------------------------------------------- summary
def table_order(key: tuple[Method, int]) -> tuple[int, int]:
    """Rows by K, then baseline, feed-forward and fine-tuned by steps: the table's and the grid's order."""
    method, k = key
    return k, -1 if method.steps is None else method.steps


def summarize(scores: dict[tuple[Method, int], list[dict[str, float]]], identities: int) -> list[dict]:
    """One row per (method, K): the mean of every metric over identities and targets, and its standard error.

    The landmark distance is averaged over the frames where a face was found (``detected`` says how many).
    Model rows also hold ``<metric>_vs_baseline`` and its standard error for each of ``PAIRED``: the mean
    target-by-target difference from the warp baseline at the same K (``paired_difference``).
    """
    rows = []
    order = sorted(scores, key=table_order)
    for method, k in order:
        scored = scores[method, k]
        row: dict = {"method": method.name, "k": k, "steps": method.steps, "label": method.label(k),
                     "identities": identities, "frames": len(scored)}
        for name in METRICS:
            row[name], row[f"{name}_stderr"] = mean_and_stderr([s[name] for s in scored])
        baseline = scores.get((Method(BASELINE, None), k))
        if method.steps is not None and baseline is not None:
            for name in PAIRED:
                row[f"{name}_vs_baseline"], row[f"{name}_vs_baseline_stderr"] = paired_difference(
                    scored, baseline, name)
        rows.append(row)
    return rows


def mean_and_stderr(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and standard error of the mean, NaNs (missed faces, unscored frames) left out; an inf stays."""
    array = np.array(values, dtype=np.float64)
    array = array[~np.isnan(array)]
    mean = float(array.mean()) if len(array) else None
    return mean, float(array.std(ddof=1) / math.sqrt(len(array))) if len(array) > 1 else None


def paired_difference(scored: list[dict[str, float]], baseline: list[dict[str, float]], name: str
                      ) -> tuple[float | None, float | None]:
    """Mean and standard error of ``scored - baseline`` on metric ``name``, target by target.

    Only targets both score (a face found in both, for the landmark distance) count.
    """
    return mean_and_stderr([a[name] - b[name] for a, b in zip(scored, baseline, strict=True)])


def real_frame_floor(distances: list[float]) -> dict[str, float | None]:
    """dlib on the real target frames: how often it finds their face, and how far from their exact landmarks.

    The best any method can score in the LMD and "face found" columns, since dlib errs on real frames too.
    """
    found = [d for d in distances if not math.isnan(d)]
    return {"landmark_distance": float(np.mean(found)) if found else None,
            "detected": len(found) / len(distances) if distances else None}


# ------------------------------------------------------------------------------------------ run
def _dataset(options: EvaluateOptions, image_size: int, scratch: str | None) -> tuple[Path, list[VideoRecord], str]:
    """(dataset root, the videos to evaluate, a description of the data) for ``options``."""
    needed = min_frames(options.ks, options.targets)
    if options.data:
        records = read_index(options.data)[1]
        return (Path(options.data), pick_videos(records, options.split, options.identities, needed),
                f"{options.split!r} split of {options.data}")
    if options.clip_frames < needed:
        raise ValueError(f"--clip-frames {options.clip_frames} is too short for K up to {max(options.ks)} and "
                         f"{options.targets} targets: use at least {needed}")
    root = Path(options.keep_rendered or scratch)
    records = render_heldout(root, options.identities, options.clip_frames, image_size, options.synthetic_seed,
                             options.heldout_fraction)
    return (root, pick_videos(records, "heldout", options.identities, needed),
            f"synthetic held-out identities, seed {options.synthetic_seed}")


def load_video_frames(root: Path, record: VideoRecord, indices: list[int], image_size: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``indices`` of a video as uint8 at the model's size, and their landmarks scaled with them."""
    frames, landmarks = read_frames(root, record, indices)
    scale = image_size / frames.shape[2]
    return tensor_to_images(to_network(frames, landmarks, image_size)[0]), landmarks * scale


@dataclass
class Evaluation:
    """What a run measured: the table's rows (``summarize``), dlib's floor on the real targets
    (``real_frame_floor``), the first identity's real targets and every (method, K)'s renderings of them,
    and what the numbers are of (``record``: ``results.json``'s options, data, time and model)."""

    rows: list[dict]
    floor: dict[str, float | None]
    real: np.ndarray
    renderings: dict[tuple[Method, int], np.ndarray]
    source: str
    model: str
    seconds: float
    record: dict


def evaluate(options: EvaluateOptions) -> Evaluation:
    """Run the protocol of ``options``; ``evaluate_report.write_report`` writes what it measured."""
    if not options.ks or min(options.ks) < 1 or not options.steps or min(options.steps) < 0:
        raise ValueError(f"need K values >= 1 and step counts >= 0, got ks={options.ks}, steps={options.steps}")
    if options.identities < 1 or options.targets < 1:
        raise ValueError(f"need at least one identity and one target, got {options.identities}, {options.targets}")
    # Built before the model loads so that a bad fine-tuning option fails at once.
    finetune = FinetuneConfig(lr_generator=options.lr_generator, batch_size=options.batch_size, seed=options.seed,
                              device=options.device)
    if options.threads:
        torch.set_num_threads(options.threads)
    started = time.time()
    loaded = load_model(options.weights, device="cpu")
    model, size = loaded.model, loaded.model.config.image_size
    scores: dict[tuple[Method, int], list[dict[str, float]]] = defaultdict(list)
    real_distances: list[float] = []
    renderings: dict[tuple[Method, int], np.ndarray] = {}
    first_targets = np.empty(0)
    rendered_for_the_run = not options.data and not options.keep_rendered
    with (tempfile.TemporaryDirectory(prefix="talking-head-eval-") if rendered_for_the_run
          else contextlib.nullcontext()) as scratch:
        root, videos, source = _dataset(options, size, scratch)
        with tqdm(total=len(videos) * len(options.ks) * (1 + len(options.steps)), desc="evaluating",
                  unit="run") as bar:
            for record in videos:  # one identity in memory at a time
                bar.set_postfix_str(record.person)
                shots, targets = frame_plan(record.num_frames, options.ks, options.targets)
                needed = sorted({*targets, *(i for indices in shots.values() for i in indices)})
                frames, landmarks = load_video_frames(root, record, needed, size)
                position = {index: i for i, index in enumerate(needed)}
                target_positions = [position[t] for t in targets]
                first = record is videos[0]
                results = evaluate_video(model, frames, landmarks,
                                         {k: [position[i] for i in v] for k, v in shots.items()},
                                         target_positions, tuple(options.steps), finetune, bar.update,
                                         renderings if first else None)
                if first:
                    first_targets = frames[target_positions]
                for key, values in results.items():
                    scores[key].extend(values)
                real_distances += [landmark_distance(frames[t], landmarks[t]) for t in target_positions]
    rows, floor = summarize(scores, len(videos)), real_frame_floor(real_distances)
    seconds = time.time() - started
    return Evaluation(rows, floor, first_targets, renderings, source, f"{loaded.origin} {loaded.location} ({size} px)",
                      seconds, {"options": asdict(options), "data": source, "seconds": round(seconds, 1),
                                "model": {"origin": loaded.origin, "location": loaded.location,
                                          "config": model.config.to_dict(), "provenance": model.provenance}})
