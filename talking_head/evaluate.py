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

Output in ``--out``: ``results.md`` (the paper's table layout: a row per method and K, a column per
metric), ``results.json`` (the same numbers with standard errors, the options and the model's
provenance), ``metrics_vs_k.png`` / ``metrics_vs_steps.png`` and ``samples.png`` (the first identity's
targets as every method and K rendered them: the pictures behind the numbers, at no extra cost).
"""

from __future__ import annotations

import contextlib
import json
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
from PIL import Image
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
from talking_head.render import caption
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


def beats_baseline(row: dict, name: str) -> bool | None:
    """Whether a model row is better than the warp baseline on ``name`` by more than the paired standard
    error (None when there is no paired difference to judge)."""
    difference, stderr = row.get(f"{name}_vs_baseline"), row.get(f"{name}_vs_baseline_stderr")
    if difference is None or stderr is None:
        return None
    return (difference if METRICS[name][1] else -difference) > stderr


# --------------------------------------------------------------------------------------- reports
def _cell(value: float | None, name: str) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.0f} %" if name == "detected" else f"{value:.2f}" if name == "psnr" else f"{value:.3f}"


def results_table(rows: list[dict]) -> str:
    """The paper's layout: a row per method and K (in brackets), a column per metric."""
    headers = [f"{title} {'↑' if higher else '↓'}" for title, higher in METRICS.values()]
    lines = ["| Method (K) | " + " | ".join(headers) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for row in rows:
        lines.append(f"| {row['label']} | " + " | ".join(_cell(row[name], name) for name in METRICS) + " |")
    return "\n".join(lines)


def comparison_table(rows: list[dict]) -> str:
    """Each model row minus the warp baseline at its K, target by target: mean ± standard error, and
    whether the model is better by more than that error (✓) or not (✗)."""
    compared = [row for row in rows if any(f"{name}_vs_baseline" in row for name in PAIRED)]
    headers = [f"{METRICS[name][0]} {'↑' if METRICS[name][1] else '↓'}" for name in PAIRED]
    lines = ["| Method (K) minus the warp baseline | " + " | ".join(headers) + " |", "|---" * (len(PAIRED) + 1) + "|"]
    for row in compared:
        cells = []
        for name in PAIRED:
            difference, stderr, better = row[f"{name}_vs_baseline"], row[f"{name}_vs_baseline_stderr"], \
                beats_baseline(row, name)
            cells.append("n/a" if difference is None or stderr is None
                         else f"{difference:+.3f} ± {stderr:.3f} {'✓' if better else '✗'}")
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def real_frame_floor(distances: list[float]) -> dict[str, float | None]:
    """dlib on the real target frames: how often it finds their face, and how far from their exact landmarks.

    The best any method can score in the LMD and "face found" columns, since dlib errs on real frames too.
    """
    found = [d for d in distances if not math.isnan(d)]
    return {"landmark_distance": float(np.mean(found)) if found else None,
            "detected": len(found) / len(distances) if distances else None}


def write_markdown(path: Path, rows: list[dict], floor: dict[str, float | None], source: str, model: str,
                   seconds: float) -> None:
    identities, targets = rows[0]["identities"], rows[0]["frames"] // rows[0]["identities"]
    found, distance = _cell(floor["detected"], "detected"), _cell(floor["landmark_distance"], "landmark_distance")
    notes = f"""
{identities} identities x {targets} target frames each ({source}); model: {model}.
Evaluated in {seconds / 60:.1f} min. The real target frames themselves: face found {found}, LMD {distance}
(dlib's own error: the best those two columns can be).

- SSIM and PSNR (scikit-image) compare each rendering with the real target frame at the model's resolution.
- CSIM: cosine similarity of dlib's 128-d face-recognition descriptors of rendering and real frame, both taken
  at the target's landmarks. dlib's descriptors lie in a narrow cone: a photo and its mirror image score 0.99;
  on synthetic faces, one face in two poses 0.97 and two different faces 0.94 on average (0.88-0.97). Small
  differences matter, and the values are not comparable with the paper's ArcFace-based CSIM.
- LMD: dlib's 68 points detected on the rendering vs the landmarks that drove it, mean distance over the
  inter-ocular distance, over the renderings where dlib found a face ("face found").
- No LPIPS-style perceptual distance: its network weights cannot be obtained offline.
"""
    paired = f"""
## Against the warp baseline, target by target

{comparison_table(rows)}

✓: better than the baseline by more than the standard error of the paired difference (both render the
same targets from the same shots, so the per-method errors above mostly measure how hard the targets are).
"""
    path.write_text(f"# Few-shot self-reenactment\n\n{results_table(rows)}\n{notes}{paired}")


def _series(rows: list[dict], method: str, steps: int | None, name: str) -> tuple[list[int], list[float]]:
    chosen = [r for r in rows if r["method"] == method and r["steps"] == steps and r[name] is not None]
    return [r["k"] for r in chosen], [r[name] for r in chosen]


def _panels(figure, floor: dict[str, float | None] | None):
    """One panel per metric, titled with its direction; the share of found faces on a 0-1 axis."""
    for axes, (name, (title, higher)) in zip(figure.subplots(1, len(METRICS)), METRICS.items()):
        axes.set_title(f"{title} ({'higher' if higher else 'lower'} is better)", fontsize="medium")
        if name == "detected":
            axes.set_ylim(-0.05, 1.05)
        if floor and floor.get(name) is not None:
            axes.axhline(floor[name], color="grey", linestyle=":", linewidth=1.5, label="real frames")
        yield axes, name


def plot_results(rows: list[dict], out: Path, floor: dict[str, float | None] | None = None) -> list[Path]:
    """``metrics_vs_k.png`` (baseline, feed-forward, most fine-tuned), and ``metrics_vs_steps.png`` when
    several step counts were evaluated (a line per K, the baseline dashed in the same colour). ``floor``
    (``real_frame_floor``) is drawn as a dotted grey line in the panels it applies to."""
    from matplotlib.figure import Figure  # only the evaluation needs matplotlib: imported here

    steps = sorted({r["steps"] for r in rows if r["steps"] is not None})
    ks = sorted({r["k"] for r in rows})
    lines = [(BASELINE, None, "warp baseline")]
    lines += [(FEED_FORWARD, 0, "feed-forward")] if 0 in steps else []
    lines += [(FINE_TUNED, steps[-1], f"fine-tuned ({steps[-1]} steps)")] if steps[-1] > 0 else []
    size = (3.6 * len(METRICS), 3.2)
    figure = Figure(figsize=size, layout="constrained")
    for axes, name in _panels(figure, floor):
        for method, n, label in lines:
            axes.plot(*_series(rows, method, n, name), marker="o", label=label)
        axes.set(xlabel="K (shots)", xscale="log")
        axes.set_xticks(ks, [str(k) for k in ks])
        axes.minorticks_off()
    for axes in figure.axes[0], figure.axes[-1]:
        axes.legend(fontsize="small")
    paths = [out / "metrics_vs_k.png"]
    figure.savefig(paths[0], dpi=100)
    if len(steps) > 1:
        figure = Figure(figsize=size, layout="constrained")
        for axes, name in _panels(figure, floor):
            for k in ks:
                chosen = [r for r in rows if r["k"] == k and r["steps"] is not None and r[name] is not None]
                line, = axes.plot([r["steps"] for r in chosen], [r[name] for r in chosen], marker="o", label=f"K={k}")
                baseline = [r[name] for r in rows if r["k"] == k and r["steps"] is None and r[name] is not None]
                if baseline:
                    axes.axhline(baseline[0], color=line.get_color(), linestyle="--", linewidth=1)
            axes.set(xlabel="fine-tuning steps")
            axes.set_xticks(steps)
        figure.axes[0].legend(title="dashed: warp baseline", fontsize="small", title_fontsize="small")
        paths.append(out / "metrics_vs_steps.png")
        figure.savefig(paths[1], dpi=100)
    return paths


def samples_grid(real: np.ndarray, renderings: dict[tuple[Method, int], np.ndarray], columns: int = 4) -> np.ndarray:
    """One identity's targets: the real frames on top, then a row per (K, method) in the table's order,
    each row labelled on its first image. (T, H, W, 3) uint8 + {(method, K): (T, H, W, 3)} -> one image."""
    chosen = np.linspace(0, len(real) - 1, min(columns, len(real))).round().astype(int)
    order = sorted(renderings, key=table_order)
    names = {BASELINE: "warp", FEED_FORWARD: "feed-fwd"}
    rows = [("real", real)] + [(f"K={k} {names.get(method.name, f'{method.steps} steps')}", renderings[method, k])
                               for method, k in order]
    return np.concatenate([np.concatenate([caption(images[chosen[0]], text), *images[chosen[1:]]], axis=1)
                           for text, images in rows], axis=0)


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


def evaluate(options: EvaluateOptions) -> list[dict]:
    """Run the protocol of ``options``; writes the results into ``options.out`` and returns the table rows."""
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
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    write_markdown(out / "results.md", rows, floor, source, f"{loaded.origin} {loaded.location} ({size} px)",
                   seconds)
    (out / "results.json").write_text(json.dumps(
        {"rows": rows, "real_frames": floor, "options": asdict(options), "data": source, "seconds": round(seconds, 1),
         "model": {"origin": loaded.origin, "location": loaded.location, "config": model.config.to_dict(),
                   "provenance": model.provenance}}, indent=1))
    plot_results(rows, out, floor)
    Image.fromarray(samples_grid(first_targets, renderings)).save(out / "samples.png")
    return rows
