"""How well does a real photo come to life? Judged by dlib, not by the project's own networks.

The project's metrics (SSIM, PSNR, the losses) compare the model with frames it was built around, and
its synthetic training faces are not real photos. dlib's HOG face detector, 68-point shape predictor
and ResNet face descriptor were trained on real photos only and share nothing with the model, so
they are an independent judge of whether an animated real photo still looks like a face, like the
same person, moves its mouth with the driver and keeps the photo's detail.

scikit-image's astronaut (``examples/astronaut.jpg``) is personalised once per weights folder and
driven by: ``examples/driver.mp4``; two synthetic drivers of other identities; and the astronaut
herself, her own landmarks warped (mouth opening and closing, head rolling a few degrees). Methods,
side by side: "shipped" (``--weights``, rendered as the app does: the warp, no generator), "warp + G
(--generator)" (the same avatar with the learned generator painting inside the mouth), "warp + mouth G (--mouth)"
(the mouth-window generator repainting open mouths, where the weights have one) and "pure synthesis (old)" (``--old-weights``).

Per output video (default RenderConfig: each frame is the face alone), over its frames:

- faces found: the share of frames where dlib detects a face;
- mouth-follow r: Pearson r between the output's and the driver's mouth opening (inner-lip gap over
  the inter-ocular distance, both from dlib's landmarks), over frames where both have a face;
- identity distance: mean Euclidean distance between the frame's dlib descriptor and the photo's
  (< 0.6 is the same person in dlib's convention), over frames with a face;
- sharpness vs photo: variance of the Laplacian of the face's landmark box (grown by 10 %, resized
  to 128 x 128, grayscale), as a ratio to the photo's face, mean over frames with a face.

The old pure-synthesis checkpoint for the README's run:
``mkdir -p /tmp/old && for f in config.json embedder.safetensors generator.safetensors
discriminator.safetensors; do git show 62f3cc0:checkpoints/$f > /tmp/old/$f; done``

    python benchmarks/real_photo_quality.py --weights checkpoints --old-weights /tmp/old
        [--steps 40] [--output-size 256] [--frames 75] [--threads 2]
        [--out benchmarks/results/real_photo_quality.md] [--keep-videos DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import numpy as np
import torch

from talking_head.avatar import Avatar
from talking_head.baseline import warp_to_landmarks
from talking_head.data.demo import write_driver_video
from talking_head.landmarks.mouth import mouth_opening, mouth_width
from talking_head.finetune import FinetuneConfig
from talking_head.landmarks.align import crop_face, inter_ocular_distance
from talking_head.landmarks.detect import FaceDetection, LandmarkDetector, get_detector
from talking_head.media import VideoSink, iter_video_frames, load_photo, probe_video
from talking_head.metrics import face_descriptor
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import DEFAULT_OUTPUT_SIZE, RenderConfig, caption, fit_height

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "astronaut.jpg"
DRIVER = ROOT / "examples" / "driver.mp4"
SYNTHETIC_IDENTITIES = (3, 7)
FPS = 25.0
SHARPNESS_SIDE = 128
#: Lower-lip and jaw points (iBUG, 0-based) that drop as the astronaut's own mouth opens. The inner
#: mouth corners (60, 64) stay, so the mouth opens symmetrically.
JAW, LOWER_LIP = list(range(5, 12)), [55, 56, 57, 58, 59, 65, 66, 67]
#: name: (comparison, target) for "shipped", judged on its mean over the drivers.
TARGETS = {"faces found": (">=", 0.95), "mouth-follow r": (">=", 0.8), "identity distance": ("<=", 0.45),
           "sharpness vs photo": (">=", 0.5)}
#: Reported beside the targets: how well the mouth's width (corner to corner) follows the driver's.
COLUMNS = ("faces found", "mouth-follow r", "mouth width r", "identity distance", "sharpness vs photo")


@dataclass(frozen=True)
class Reference:
    """The photo as dlib sees it: its face's descriptor and sharpness."""

    descriptor: np.ndarray
    sharpness: float


@dataclass(frozen=True)
class Method:
    name: str
    avatar: Avatar
    pipe: TalkingHeadPipeline
    generator: bool = False
    mouth: bool = False


# ------------------------------------------------------------------------------------------ the judge
def largest_face(detector: LandmarkDetector, frame: np.ndarray) -> FaceDetection | None:
    faces = detector.detect(frame)
    return faces[0] if faces else None


def sharpness(frame: np.ndarray, landmarks: np.ndarray) -> float:
    """Variance of the Laplacian of the landmarks' box grown by 10 %, resized to 128 x 128, in grayscale."""
    (x0, y0), (x1, y1) = landmarks.min(axis=0), landmarks.max(axis=0)
    grow_x, grow_y = 0.05 * (x1 - x0), 0.05 * (y1 - y0)
    height, width = frame.shape[:2]
    x0, y0 = max(0, math.floor(x0 - grow_x)), max(0, math.floor(y0 - grow_y))
    x1, y1 = min(width, math.ceil(x1 + grow_x)), min(height, math.ceil(y1 + grow_y))
    gray = cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    face = cv2.resize(gray, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(face.astype(np.float64), cv2.CV_64F).var())


def reference(photo: np.ndarray, face: FaceDetection) -> Reference:
    return Reference(face_descriptor(photo, face.landmarks), sharpness(photo, face.landmarks))


def mouth_series(detector: LandmarkDetector, video: Path, max_frames: int) -> np.ndarray:
    """The mouth opening and width of each frame, (T, 2) (NaN where dlib finds no face)."""
    faces = (largest_face(detector, frame) for frame in iter_video_frames(video, max_frames))
    return np.array([(mouth_opening(face.landmarks), mouth_width(face.landmarks)) if face else (math.nan, math.nan)
                     for face in faces]).reshape(-1, 2)


def judge_video(detector: LandmarkDetector, video: Path, photo: Reference, driver_mouth: np.ndarray
                ) -> dict[str, float]:
    """The four scores of one output video against the photo and the driver's mouth."""
    mouth, identity, sharp = [], [], []
    for frame in iter_video_frames(video):
        face = largest_face(detector, frame)
        if face is None:
            mouth.append((math.nan, math.nan))
            continue
        mouth.append((float(mouth_opening(face.landmarks)), float(mouth_width(face.landmarks))))
        identity.append(float(np.linalg.norm(face_descriptor(frame, face.landmarks) - photo.descriptor)))
        sharp.append(sharpness(frame, face.landmarks) / photo.sharpness)
    shape = np.array(mouth).reshape(-1, 2)
    return {"faces found": len(identity) / len(mouth), "mouth-follow r": pearson(shape[:, 0], driver_mouth[:, 0]),
            "mouth width r": pearson(shape[:, 1], driver_mouth[:, 1]),
            "identity distance": float(np.mean(identity)) if identity else math.nan,
            "sharpness vs photo": float(np.mean(sharp)) if sharp else math.nan}


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r over the frames where both series are defined (NaN if fewer than 3 or one is constant)."""
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < 3 or np.std(a[both]) == 0 or np.std(b[both]) == 0:
        return math.nan
    return float(np.corrcoef(a[both], b[both])[0, 1])


# ----------------------------------------------------------------------------------------- drivers
def self_driver(path: Path, photo: np.ndarray, landmarks: np.ndarray, num_frames: int) -> Path:
    """The photo warped by its own landmarks: the mouth opens and closes (1.2 s period, up to 0.35
    inter-ocular distances) while the head rolls up to 4 degrees (3 s period) about the face centre."""
    iod, centre = inter_ocular_distance(landmarks), landmarks.mean(axis=0)
    with VideoSink(path, photo.shape[1], photo.shape[0], FPS) as sink:
        for t in np.arange(num_frames) / FPS:
            target = np.asarray(landmarks, np.float64).copy()
            target[JAW + LOWER_LIP, 1] += 0.35 * iod * 0.5 * (1 - math.cos(2 * math.pi * t / 1.2))
            angle = math.radians(4.0) * math.sin(2 * math.pi * t / 3.0)
            rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
            sink.write(warp_to_landmarks(photo, landmarks, (target - centre) @ rotation.T + centre))
    return path


def build_drivers(folder: Path, photo: np.ndarray, landmarks: np.ndarray, num_frames: int) -> dict[str, Path]:
    drivers = {"examples/driver.mp4": DRIVER}
    for identity in SYNTHETIC_IDENTITIES:
        drivers[f"synthetic id {identity}"] = write_driver_video(folder / f"driver_id{identity}.mp4", identity,
                                                                 num_frames=num_frames, image_size=256)
    drivers["astronaut self-warp"] = self_driver(folder / "driver_self.mp4", photo, landmarks, num_frames)
    return drivers


# ----------------------------------------------------------------------------------------- methods
def build_methods(args: argparse.Namespace, notes: list[str]) -> list[Method]:
    methods = []
    for name, weights in (("shipped", args.weights), ("pure synthesis (old)", args.old_weights)):
        if weights is None:
            notes.append(f"{name}: skipped (no --old-weights given)")
            continue
        pipe = TalkingHeadPipeline.from_pretrained(weights, device="cpu", landmark_backend="dlib")
        avatar = pipe.personalize([PHOTO], steps=args.steps)
        print(f"{name}: {weights}, personalised in {avatar.info['seconds']:.1f} s ({args.steps} steps)")
        methods.append(Method(name, avatar, pipe))
        if name == "shipped":
            if avatar.texture_path:
                methods.append(Method("warp + G (--generator)", avatar, pipe, generator=True))
                if avatar.mouth is not None:
                    methods.append(Method("warp + mouth G (--mouth)", avatar, pipe, mouth=True))
            else:
                notes.append(f"warp + G: skipped ({weights} is not a texture-path checkpoint)")
    return methods


def render(method: Method, driver: Path, out: Path, args: argparse.Namespace) -> Path:
    # Half a frame more than --frames: the renderer truncates seconds x fps to whole frames.
    config = RenderConfig(output_size=args.output_size, generator=method.generator, mouth=method.mouth,
                          max_seconds=(args.frames + 0.5) / probe_video(driver).fps, trim=True)
    return method.pipe.animate(method.avatar, driver, out, config).path


# ---------------------------------------------------------------------------------------- reporting
def cell(name: str, value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.0%}" if name == "faces found" else f"{value:.2f}"


def table(rows: list[tuple[str, str, dict[str, float]]]) -> list[str]:
    lines = ["| driver | method | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    lines += [f"| {driver} | {method} | " + " | ".join(cell(c, scores[c]) for c in COLUMNS) + " |"
              for driver, method, scores in rows]
    return lines


def method_means(rows: list[tuple[str, str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Each method's scores averaged over the drivers (NaN-ignoring)."""
    means: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(method for _, method, _ in rows):
        scores = [s for _, m, s in rows if m == method]
        means[method] = {c: float(np.nanmean([s[c] for s in scores])) if any(np.isfinite(s[c]) for s in scores)
                         else math.nan for c in COLUMNS}
    return means


def drivers_found(driver_mouths: dict[str, np.ndarray]) -> str:
    found = (f"{name} {cell('faces found', float(np.isfinite(mouth[:, 0]).mean()))}"
             for name, mouth in driver_mouths.items())
    return "dlib finds a face in the drivers' own frames: " + ", ".join(found)


def acceptance(means: dict[str, float]) -> list[str]:
    lines = []
    for name, (comparison, target) in TARGETS.items():
        value = means[name]
        passed = value >= target if comparison == ">=" else value <= target  # False for NaN
        lines.append(f"- {name} {comparison} {cell(name, target)}: {cell(name, value)} {'PASS' if passed else 'FAIL'}")
    return lines


def contact_sheet(path: Path, drivers: dict[str, Path], videos: dict[tuple[str, str], Path],
                  driver_mouths: dict[str, np.ndarray], photo_face: np.ndarray, height: int) -> None:
    """Per driver, its frames with the mouth most closed, most open and in the middle of the clip:
    driver | photo | each method, ``height`` pixels tall."""
    methods = list(dict.fromkeys(method for _, method in videos))
    rows = []
    for driver, driver_path in drivers.items():
        mouth = driver_mouths[driver][:, 0]
        picks = sorted({int(np.nanargmin(mouth)), int(np.nanargmax(mouth)), len(mouth) // 2})
        columns = [frames_at(driver_path, picks)] + [[photo_face] * len(picks)]
        columns += [frames_at(videos[driver, m], picks) for m in methods]
        for i, pick in enumerate(picks):
            names = [f"{driver} #{pick}", "photo", *methods]
            rows.append(np.concatenate([caption(fit_height(column[i], height), name)
                                        for name, column in zip(names, columns)], axis=1))
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


def slug(name: str) -> str:
    """A file-name part: letters, digits and underscores."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def frames_at(video: Path, indices: list[int]) -> list[np.ndarray]:
    wanted = set(indices)
    return [frame for i, frame in enumerate(iter_video_frames(video, max(indices) + 1)) if i in wanted]


# -------------------------------------------------------------------------------------------- main
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="checkpoints", help="the shipped (texture-path) checkpoint")
    parser.add_argument("--old-weights", help="the old pure-synthesis checkpoint (skipped when not given)")
    parser.add_argument("--steps", type=int, default=FinetuneConfig().steps,
                        help="fine-tuning steps (default: the app's)")
    parser.add_argument("--output-size", type=int, default=DEFAULT_OUTPUT_SIZE)
    parser.add_argument("--frames", type=int, default=75, help="frames per driver at most")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "real_photo_quality.md")
    parser.add_argument("--keep-videos", type=Path, help="keep the mp4s here, with a contact sheet PNG")
    return parser.parse_args()


def header(args: argparse.Namespace) -> str:
    return (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; torch threads "
            f"{args.threads}; steps {args.steps}; output size {args.output_size} px; at most {args.frames} frames a "
            f"driver; judged by dlib {dlib.__version__} (HOG detector, 68-point predictor, ResNet descriptor); "
            f"photo {PHOTO.relative_to(ROOT)}; weights {args.weights}, old weights {args.old_weights}.")


def run(args: argparse.Namespace, folder: Path) -> list[str]:
    """Everything, in ``folder``; returns the report's lines."""
    detector = get_detector("dlib")
    photo = load_photo(PHOTO)
    photo_face = largest_face(detector, photo)
    if photo_face is None:
        raise SystemExit(f"dlib finds no face in {PHOTO}")
    judge_photo = reference(photo, photo_face)
    drivers = build_drivers(folder, photo, photo_face.landmarks, args.frames)
    driver_mouths = {name: mouth_series(detector, path, args.frames) for name, path in drivers.items()}
    notes: list[str] = []
    methods = build_methods(args, notes)
    rows, videos = [], {}
    for driver, driver_path in drivers.items():
        for method in methods:
            video = render(method, driver_path, folder / f"{slug(driver)}-{slug(method.name)}.mp4", args)
            videos[driver, method.name] = video
            rows.append((driver, method.name, judge_video(detector, video, judge_photo, driver_mouths[driver])))
            print(f"  {driver} / {method.name}: done")
    if args.keep_videos:
        sheet = folder / "contact_sheet.png"
        contact_sheet(sheet, drivers, videos, driver_mouths, crop_face(photo, photo_face.landmarks, 160)[0], 160)
        print(f"videos and {sheet.name} kept in {folder}")
    means = method_means(rows)
    lines = [header(args), "", *table(rows), "", drivers_found(driver_mouths), ""]
    lines += [f"Mean over drivers, {method}: " + ", ".join(f"{c} {cell(c, v)}" for c, v in scores.items())
              for method, scores in means.items()]
    if "shipped" in means:
        lines += ["", "Acceptance targets (shipped, mean over drivers):", *acceptance(means["shipped"])]
    return lines + ([""] + [f"Note: {note}" for note in notes] if notes else [])


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.keep_videos:
        args.keep_videos.mkdir(parents=True, exist_ok=True)
        lines = run(args, args.keep_videos)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            lines = run(args, Path(scratch))
    report = "\n".join(lines) + "\n"
    print("\n" + report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
