"""Does the photo's mouth take the driver's shape? Opening AND width, judged by dlib on the output.

The issue's acceptance 1: synthetic drivers of held-out identities, whose landmarks are exact (no
detector noise on the driver's side), retargeted onto scikit-image's astronaut (a smiling photo) at the
defaults; each output face is judged by dlib's 68-point predictor (trained on real photos, not this
project's code). Per driver and method, Pearson r of the output's mouth opening (inner-lip gap) and of
its width (outer corner 48 to corner 54), both in eye distances, against the driver's exact ones.

No video is encoded and the driver is not tracked or smoothed: this isolates retargeting, the warp and
the mouth's inside. Two reference rows per driver: the retargeted landmarks themselves (what the warp is
asked to show, no judge) and dlib on the driver's own frames (how well the judge reads this driver at all). ``python -m talking_head animate`` adds tracking and smoothing on top.

    python benchmarks/mouth_shape.py --weights checkpoints [--frames 100] [--drivers 3] [--size 256]
        [--out benchmarks/results/mouth_shape.md] [--sheet docs/mouth_shape.png]
"""

from __future__ import annotations

import argparse
import math
import platform
from pathlib import Path

import cv2
import numpy as np
import torch

from talking_head.data.synthetic import identities_of, render_video
from talking_head.face_render import render_faces
from talking_head.landmarks.align import Retargeter
from talking_head.landmarks.detect import get_detector
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import retarget_batch
from talking_head.landmarks.mouth import mouth_opening, mouth_width

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "astronaut.jpg"
TARGET_R = 0.9


def cpu_name() -> str:
    """The CPU's model name (``platform.processor()`` is empty on Linux)."""
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < 3 or np.std(a[both]) == 0 or np.std(b[both]) == 0:
        return math.nan
    return float(np.corrcoef(a[both], b[both])[0, 1])


def judge(detector, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dlib's opening and width of each face (NaN where it finds none)."""
    opening, width = np.full(len(faces), math.nan), np.full(len(faces), math.nan)
    for i, face in enumerate(faces):
        found = detector.detect(face)
        if found:
            opening[i], width[i] = mouth_opening(found[0].landmarks), mouth_width(found[0].landmarks)
    return opening, width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="checkpoints")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--drivers", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--generator", action="store_true", help="also render warp + generator")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--sheet", type=Path, help="a PNG: driver | result at the widest, narrowest, most open")
    args = parser.parse_args()
    torch.set_num_threads(2)
    pipe = TalkingHeadPipeline.from_pretrained(args.weights, device="cpu", landmark_backend="dlib")
    avatar = pipe.personalize([PHOTO], steps=0)
    detector = get_detector("dlib")
    methods = {"warp (default)": False} | ({"warp + G": True} if args.generator else {})
    lines = [f"Machine: {cpu_name()}; {args.frames} frames a driver, {args.size} px; "
             f"photo {PHOTO.name}; weights {args.weights}", "",
             "| driver | method | faces found | opening r | width r |", "|---|---|---|---|---|"]
    sheet_rows, scores = [], {m: [] for m in methods}
    for identity in identities_of("heldout", args.drivers):
        frames, exact = render_video(identity, 0, args.frames, args.size)
        driver_opening, driver_width = mouth_opening(exact), mouth_width(exact)
        targets = retarget_batch(Retargeter(avatar.source_landmarks), list(exact), avatar.source_landmarks)
        # Two references: what retargeting asks of the warp (exact landmarks, no judge), and how well dlib reads
        # the driver's own frames (the judge's ceiling on this driver).
        for name, opening, width in (("retargeted landmarks (no render)", mouth_opening(targets), mouth_width(targets)),
                                     ("the driver's own frames", *judge(detector, frames))):
            lines.append(f"| held-out id {identity} | {name} | {np.isfinite(opening).mean():.0%} | "
                         f"{pearson(opening, driver_opening):.2f} | {pearson(width, driver_width):.2f} |")
        for name, generator in methods.items():
            with torch.inference_mode():
                faces = np.concatenate([render_faces(avatar, targets[i:i + 16], args.size, generator=generator)
                                        for i in range(0, len(targets), 16)])
            opening, width = judge(detector, faces)
            r_open, r_width = pearson(opening, driver_opening), pearson(width, driver_width)
            scores[name].append((r_open, r_width))
            lines.append(f"| held-out id {identity} | {name} | {np.isfinite(opening).mean():.0%} | {r_open:.2f} | "
                         f"{r_width:.2f} |")
            print(lines[-1], flush=True)
            if args.sheet and not generator:
                picks = [int(np.argmax(driver_width)), int(np.argmin(driver_width)), int(np.argmax(driver_opening))]
                sheet_rows += [np.concatenate([frames[p], faces[p]], axis=1) for p in picks]
    lines.append("")
    for name, rs in scores.items():
        mean_open, mean_width = np.nanmean([r[0] for r in rs]), np.nanmean([r[1] for r in rs])
        lines.append(f"Mean, {name}: opening r {mean_open:.2f}, width r {mean_width:.2f} (target >= {TARGET_R})")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)
    if args.sheet:
        cv2.imwrite(str(args.sheet), cv2.cvtColor(np.concatenate(sheet_rows, axis=0), cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
