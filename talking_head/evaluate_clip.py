"""``evaluate --clip``: self-reenactment on any recording, the warp beside the model, the mouth first.

The paper's protocol on one clip (a user's own recording, or a synthetic one): the K shots come from
the clip's first half, its second half is both the driver and the ground truth. For each K and
number of fine-tuning steps one avatar is personalised (``TalkingHeadPipeline.personalize``, the
app's own path) and renders every target twice: the texture path's warp alone, and the model (warp +
generator). Both are rendered from the same retargeted landmarks (``RenderConfig``'s ``retarget``;
the driver's landmarks are tracked and smoothed as ``animate`` does), so their difference is the
generator's alone. The warp depends only on the shots: it is rendered once per K.

Each output frame is put onto its real frame by a similarity fitted on dlib's eye and nose points of
both (a rendering sits in the avatar's crop, the real face wherever the camera had it), then scored:
grey-level SSIM in the mouth's box and in the face's box, the mouth points' distance (in inter-ocular
distances), and, over the clip, Pearson r of the mouth's inner-lip opening and of its width (corner
to corner) against the real frames'. A rendering's points are dlib's (the detected face nearest where
it was drawn), or its shape predictor in the box where it was drawn when the detector misses it: a
rendering has no detector miss to hide behind. Real frames where dlib's tracker finds no face are
not scored.

Memory is flat in the clip's length: the clip is decoded as a stream (its length under the driver's
limits), scored a batch at a time, and only the worst few targets' pictures are kept. Reporting
(markdown, JSON, the picture) is ``evaluate_clip_report``'s.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from talking_head.avatar import Avatar
from talking_head.clip_shots import ClipShots, ClipShotsConfig, choose_shots
from talking_head.errors import InputError
from talking_head.evaluate import mean_and_stderr
from talking_head.face_render import finish_faces, texture_for
from talking_head.finetune import FinetuneConfig
from talking_head.landmarks.align import EYES, RETARGET_MODES, Retargeter, crop_face, similarity_matrix
from talking_head.landmarks.detect import DlibBackend, LandmarkDetector
from talking_head.landmarks.mouth import mouth_opening, mouth_width
from talking_head.landmarks.smooth import CentredSmoother, smooth_stream
from talking_head.landmarks.track import FaceTracker
from talking_head.media import iter_video_frames
from talking_head.metrics import box_ssim, face_box, mouth_box, mouth_landmark_distance, pearson
from talking_head.options import option
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import DEFAULT_OUTPUT_SIZE, DrivingVideo, RenderConfig, driver_landmarks, retarget_batch
from talking_head.tensors import tensor_to_images

log = logging.getLogger(__name__)

WARP, MODEL = "warp", "model"
METHODS = (WARP, MODEL)
#: Scored frame by frame: name -> higher is better.
FRAME_METRICS = {"mouth_ssim": True, "face_ssim": True, "mouth_lmd": False}
#: Measured on each frame, judged over the clip by Pearson r against the real frames' (higher is better).
SERIES = ("opening", "width")
#: The points the output is aligned onto its real frame by: the eyes and the nose, which a mouth does not move.
ALIGN_POINTS = list(EYES) + list(range(27, 36))
#: Resamples of the bootstrap that gives a Pearson r (and a difference of two) its standard error.
BOOTSTRAP = 500


@dataclass(frozen=True)
class ClipOptions:
    clip: tuple[str, ...] = option((), "self-reenactment on these recordings instead of synthetic identities: "
                                   "shots from each one's first half, its second half drives and is the truth "
                                   "(several clips are pooled)")
    output_size: int = option(DEFAULT_OUTPUT_SIZE, "with --clip: side of the rendered and real face crops, in pixels")
    retarget: str = option("absolute", "with --clip: how the driver's landmarks reach the avatar (absolute: as they "
                           "are, the paper's self-reenactment)", choices=list(RETARGET_MODES))
    worst: int = option(3, "with --clip: the worst targets (by the model's mouth SSIM) shown per setting")
    shot_choice: str = option("even", "with --clip: how the K shots are taken from the first half: even (spread "
                              "evenly over the frames with a face) or cover (as a clip among --photos is: pose and "
                              "mouth covered, sharp, no near-duplicates; docs/clip_shots.md)",
                              choices=["even", "cover"])
    model: str = option("generator", "with --clip: the model set beside the warp: generator (the face's G over the "
                        "warp, inside the mouth) or mouth (the mouth-window generator, docs/mouth.md)",
                        choices=["generator", "mouth"])


@dataclass(frozen=True, order=True)
class Setting:
    """One avatar: K shots, fine-tuned for ``steps`` (0: feed-forward)."""

    k: int
    steps: int

    @property
    def label(self) -> str:
        return f"K={self.k}, " + ("feed-forward" if self.steps == 0 else f"fine-tuned {self.steps} steps")


@dataclass(frozen=True)
class Worst:
    """One badly rendered target, as scored: the real crop and both renderings aligned onto it."""

    score: float
    clip: str
    frame: int
    real: np.ndarray
    warp: np.ndarray
    model: np.ndarray


@dataclass
class ClipResult:
    """Every target's scores (``records``: one per clip, frame, setting and method), the summary rows and
    the worst targets of each setting."""

    records: list[dict]
    rows: list[dict]
    worst: dict[Setting, list[Worst]]
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ shots
def spread(indices: list[int], k: int) -> list[int]:
    """``k`` of ``indices`` spread evenly from the first to the last (all of them when ``k`` is more)."""
    if k >= len(indices):
        return list(indices)
    return [indices[i] for i in np.linspace(0, len(indices) - 1, k).round().astype(int)]


def pick_shots(clip: Path, pipe: TalkingHeadPipeline, with_face: list[int], half: int, k: int, how: str
               ) -> list[int] | ClipShots:
    """The first half's ``k`` shots: ``even``, the frame numbers :func:`spread` over ``with_face``; ``cover``, the
    shots :func:`~talking_head.clip_shots.choose_shots` takes from the first ``half`` frames (a clip among photos')."""
    if how == "even":
        return spread(with_face, k)
    return choose_shots(clip, pipe.detector, ClipShotsConfig(shots=k), pipe.limits, max_frames=half)


def frames_with_a_face(clip: Path, driving: DrivingVideo, frames: int, detector: LandmarkDetector) -> list[int]:
    """Which of the clip's first ``frames`` frames the detector finds a face in: a shot needs one."""
    decoded = iter_video_frames(clip, frames, driving.info)
    return [i for i, frame in enumerate(decoded) if detector.detect(frame)]


def decode_frames(clip: Path, driving: DrivingVideo, indices: set[int]) -> dict[int, np.ndarray]:
    """Frames ``indices`` of the clip (a stream: only those are kept)."""
    decoded = iter_video_frames(clip, max(indices) + 1, driving.info)
    return {i: frame.copy() for i, frame in enumerate(decoded) if i in indices}


# ------------------------------------------------------------------------------------------ scoring
def box_around(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """A dlib detector's box for a face at ``landmarks``: a square as wide as their extent, raised by a tenth
    of it (measured on dlib's own boxes of synthetic faces)."""
    low, high = landmarks.min(0), landmarks.max(0)
    side = 1.05 * float(max(high - low))
    cx, cy = (low + high) / 2
    cy -= 0.1 * side
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def align_onto(image: np.ndarray, points: np.ndarray, real_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (with its 68 ``points``) moved onto a real frame of the same size by the similarity that takes
    its eyes and nose onto ``real_points``'; returns the moved image and points."""
    matrix = similarity_matrix(points[ALIGN_POINTS], real_points[ALIGN_POINTS])
    size = image.shape[1], image.shape[0]
    moved = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return moved, points @ matrix[:, :2].T + matrix[:, 2]


def score_frame(output: np.ndarray, points: np.ndarray, real: np.ndarray, real_points: np.ndarray
                ) -> tuple[dict[str, float], np.ndarray]:
    """One rendering (its 68 ``points``) against its real frame (and ``real_points``), both ``(S, S, 3)``:
    the scores and the rendering aligned onto the real frame."""
    aligned, aligned_points = align_onto(output, points, real_points)
    scores = {"mouth_ssim": box_ssim(aligned, real, mouth_box(real_points, real.shape)),
              "face_ssim": box_ssim(aligned, real, face_box(real_points, real.shape)),
              "mouth_lmd": mouth_landmark_distance(aligned_points, real_points),
              "opening": float(mouth_opening(points)), "width": float(mouth_width(points))}
    return scores, aligned


@dataclass
class Target:
    """A frame of the clip's second half: the driver's landmarks for it and, where dlib found the face,
    its real crop and landmarks (crop pixels)."""

    frame: int
    driver: np.ndarray | None
    real: np.ndarray | None
    real_points: np.ndarray | None


def targets(clip: Path, driving: DrivingVideo, start: int, detector: LandmarkDetector, config: RenderConfig,
            size: int) -> Iterator[Target]:
    """The clip from frame ``start`` as ``animate`` drives with it (tracked, smoothed), each frame's real face
    cut at ``size`` px around the landmarks dlib found in it (tracked, not smoothed)."""
    decoded = itertools.islice(iter_video_frames(clip, driving.max_frames, driving.info), start, None)
    tracked = ((item, item[1] if item[2] else None)
               for item in driver_landmarks(decoded, FaceTracker(detector, config.track), None))
    driven = None
    for offset, ((frame, found_points, found), smoothed) in enumerate(
            smooth_stream(tracked, CentredSmoother()) if config.smooth else tracked):
        if not found:
            yield Target(start + offset, driven, None, None)
            continue
        driven = smoothed
        real, real_points = crop_face(frame, found_points, size)
        yield Target(start + offset, driven, real, real_points.astype(np.float64))


class Renderer:
    """One K's avatars (a steps count each, the same shots): the warp once, then each avatar's model."""

    def __init__(self, avatars: dict[int, Avatar], retarget: str, size: int, model: str = "generator") -> None:
        self.avatars, self.size, self.model = avatars, size, model
        first = next(iter(avatars.values()))
        self.source = first.source_landmarks
        self.retargeter = Retargeter(first.source_landmarks, retarget)

    def __call__(self, batch: list[Target]) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
        """(the target landmarks at ``size``, the warp, {steps: the model}) for ``batch``."""
        first = next(iter(self.avatars.values()))
        points = retarget_batch(self.retargeter, [t.driver for t in batch], self.source)
        warped = texture_for(first, points, self.size)
        models = {steps: finish_faces(avatar, points, self.size, warped, generator=self.model == "generator",
                                      mouth=self.model == "mouth") for steps, avatar in self.avatars.items()}
        return points * np.float32(self.size / first.image_size), tensor_to_images(warped), models


@dataclass
class ClipScorer:
    """Scores of every target of every clip, and each setting's worst targets so far."""

    landmarker: DlibBackend  # its detector, and its shape predictor in a given box
    keep_worst: int
    records: list[dict] = field(default_factory=list)
    worst: dict[Setting, list[Worst]] = field(default_factory=dict)

    def points(self, image: np.ndarray, hint: np.ndarray) -> np.ndarray:
        """dlib's 68 points of the face in ``image``: the detected face nearest ``hint`` (where it was drawn),
        else the shape predictor in the box a detection there would have had."""
        faces = self.landmarker.detect(image)
        if faces:
            nearest = min(faces, key=lambda f: float(np.linalg.norm(f.landmarks.mean(0) - hint.mean(0))))
            return nearest.landmarks.astype(np.float64)
        return self.landmarker.landmarks_in_box(image, box_around(hint)).landmarks.astype(np.float64)

    def add(self, clip: str, setting: Setting, target: Target, hint: np.ndarray, warp: np.ndarray,
            model: np.ndarray) -> None:
        aligned = {}
        for method, image in ((WARP, warp), (MODEL, model)):
            scores, aligned[method] = score_frame(image, self.points(image, hint), target.real, target.real_points)
            self.records.append({"clip": clip, "frame": target.frame, "k": setting.k, "steps": setting.steps,
                                 "method": method, **scores,
                                 "real_opening": float(mouth_opening(target.real_points)),
                                 "real_width": float(mouth_width(target.real_points))})
        score = self.records[-1]["mouth_ssim"]
        if self.keep_worst and not math.isnan(score):
            kept = self.worst.setdefault(setting, [])
            kept.append(Worst(score, clip, target.frame, target.real, aligned[WARP], aligned[MODEL]))
            kept.sort(key=lambda w: w.score)
            del kept[self.keep_worst:]


# ------------------------------------------------------------------------------------------ the run
def check_clip(clip: Path, config: RenderConfig, pipe: TalkingHeadPipeline) -> DrivingVideo:
    """The clip as it will be decoded (under a driver's limits), or an InputError saying why it cannot be used."""
    driving = pipe.check_driver(clip, config)
    if driving.frames < 2:
        raise InputError(f"{clip.name!r} has {driving.frames} frame: self-reenactment needs at least 2 (shots from "
                         f"its first half, targets from its second)")
    return driving


def evaluate_clip(pipe: TalkingHeadPipeline, clip: Path, settings: list[Setting], finetune: FinetuneConfig,
                  options: ClipOptions, scorer: ClipScorer, batch_size: int = 8) -> list[str]:
    """Score every setting on one clip into ``scorer``; returns notes for the reader (K capped, frames unscored)."""
    config = RenderConfig(retarget=options.retarget, output_size=options.output_size)
    driving = check_clip(clip, config, pipe)
    half = driving.frames // 2
    with_face = frames_with_a_face(clip, driving, half, pipe.detector)
    if not with_face:
        raise InputError(f"no face was found in the first half of {clip.name!r} (frames 0-{half - 1}): the shots "
                         f"come from there")
    cap = min(len(with_face), pipe.limits.max_shots)
    notes = [f"{clip.name}: K capped at {cap} (faces found in {len(with_face)} of the first half's {half} frames)"
             ] if max(s.k for s in settings) > cap else []
    chosen = {k: pick_shots(clip, pipe, with_face, half, min(k, cap), options.shot_choice)
              for k in sorted({s.k for s in settings})}
    evenly = {i for picked in chosen.values() if isinstance(picked, list) for i in picked}
    frames = decode_frames(clip, driving, evenly) if evenly else {}
    renderers = []
    for k, picked in chosen.items():
        # A clip's chosen shots come with the landmarks its tracker found; frames spread evenly are searched anew.
        shots = pipe.prepare_shots([picked] if isinstance(picked, ClipShots) else [frames[i] for i in picked])
        indices = [shot.index for shot in picked.shots] if isinstance(picked, ClipShots) else picked
        avatars = {s.steps: pipe.personalize(shots, steps=s.steps, finetune=finetune)
                   for s in settings if s.k == k}
        log.info("%s: K=%d personalised (shots: frames %s)", clip.name, k, indices)
        renderers.append((k, len(indices), Renderer(avatars, options.retarget, options.output_size, options.model)))
    del frames
    scored = seen = 0
    stream = targets(clip, driving, half, pipe.detector, config, options.output_size)
    with torch.inference_mode():
        for batch in _batches(stream, batch_size):
            seen += len(batch)
            for k, used, render in renderers:
                hints, warp, models = render(batch)
                for i, target in enumerate(batch):
                    if target.real is None:
                        continue
                    for steps, model in models.items():
                        scorer.add(clip.name, Setting(used, steps), target, hints[i], warp[i], model[i])
            scored += sum(t.real is not None for t in batch)
    if scored == 0:
        raise InputError(f"no face was found in the second half of {clip.name!r}: it has nothing to compare with")
    if scored < seen:
        notes.append(f"{clip.name}: {scored} of {seen} targets scored (dlib found no face in the others' real frame)")
    log.info("%s: %d targets scored", clip.name, scored)
    return notes


def _batches(items: Iterator[Target], size: int) -> Iterator[list[Target]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


def evaluate_clips(pipe: TalkingHeadPipeline, clips: list[Path], ks: tuple[int, ...], steps: tuple[int, ...],
                   finetune: FinetuneConfig, options: ClipOptions) -> ClipResult:
    """The protocol on every clip (the frames of all pooled), summarised per setting."""
    if not ks or min(ks) < 1 or not steps or min(steps) < 0:
        raise InputError(f"need K values >= 1 and step counts >= 0, got ks={ks}, steps={steps}")
    if options.output_size < 32 or options.output_size > pipe.limits.max_output_size:
        raise InputError(f"--output-size must be 32 to {pipe.limits.max_output_size} px, got {options.output_size}")
    settings = sorted({Setting(k, n) for k in ks for n in steps})
    scorer = ClipScorer(DlibBackend(), options.worst)
    notes = [note for clip in clips for note in evaluate_clip(pipe, Path(clip), settings, finetune, options, scorer)]
    return ClipResult(scorer.records, summarize(scorer.records), scorer.worst, notes)


# ------------------------------------------------------------------------------------------ summary
def summarize(records: list[dict]) -> list[dict]:
    """A row per setting (in the records' K, steps order): each method's mean ± standard error of every frame
    metric and Pearson r (± a bootstrap's) of the opening and width against the real frames', and the
    model minus the warp, target by target, with its own standard error; ``clips``: that difference on the
    mouth's SSIM for each clip alone (is a mean gain every clip's, or a few clips'?)."""
    groups: dict[tuple[int, int], dict[str, list[dict]]] = {}
    for record in sorted(records, key=lambda r: (r["k"], r["steps"], r["clip"], r["frame"])):
        groups.setdefault((record["k"], record["steps"]), {m: [] for m in METHODS})[record["method"]].append(record)
    rows = []
    for (k, steps), by_method in groups.items():
        warp, model = by_method[WARP], by_method[MODEL]
        row: dict = {"k": k, "steps": steps, "label": Setting(k, steps).label, "targets": len(model)}
        for method, scored in by_method.items():
            for name in FRAME_METRICS:
                row[f"{method}_{name}"], row[f"{method}_{name}_stderr"] = mean_and_stderr([r[name] for r in scored])
        for name in FRAME_METRICS:
            row[f"difference_{name}"], row[f"difference_{name}_stderr"] = mean_and_stderr(
                [m[name] - w[name] for m, w in zip(model, warp, strict=True)])
        row["clips"] = {clip: mean_and_stderr([m["mouth_ssim"] - w["mouth_ssim"] for m, w in zip(model, warp)
                                               if m["clip"] == clip])
                        for clip in sorted({m["clip"] for m in model})}  # the mouth's difference, clip by clip
        for name in SERIES:
            real = np.array([r[f"real_{name}"] for r in model])
            estimates = correlations(real, *(np.array([r[name] for r in by_method[m]]) for m in METHODS))
            for key, (value, stderr) in estimates.items():
                row[f"{key}_{name}_r"], row[f"{key}_{name}_r_stderr"] = value, stderr
        rows.append(row)
    return rows


def correlations(real: np.ndarray, warp: np.ndarray, model: np.ndarray, resamples: int = BOOTSTRAP
                 ) -> dict[str, tuple[float | None, float | None]]:
    """Pearson r of the warp's and the model's series against the real one, and model minus warp, each with
    the standard error of a paired bootstrap over the targets (a fixed seed: the same table every run)."""
    values = {WARP: pearson(real, warp), MODEL: pearson(real, model)}
    values["difference"] = values[MODEL] - values[WARP]
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(resamples if len(real) >= 3 else 0):
        i = rng.integers(0, len(real), len(real))
        w, m = pearson(real[i], warp[i]), pearson(real[i], model[i])
        draws.append((w, m, m - w))
    errors = np.nanstd(np.array(draws), axis=0, ddof=1) if draws else [math.nan] * 3
    return {key: (_number(values[key]), _number(errors[j])) for j, key in enumerate((WARP, MODEL, "difference"))}


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)

