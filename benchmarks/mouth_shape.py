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
        [--out benchmarks/results/mouth_shape.md] [--sheet docs/mouth_shape.png] [--mesh-model MODEL]

``--mesh-model`` (``benchmarks/mesh_judge.py``) adds a second judge, MediaPipe's Face Mesh, reading the same
faces in dlib's detector boxes: whether a width r is the rendering's or the judge's.
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

from mesh_judge import MeshJudge

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


def judge(detector, faces: np.ndarray, mesh: MeshJudge | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each judge's opening and width of each face, by name (NaN where dlib's detector finds no face): dlib's
    68 points, and with ``mesh`` Face Mesh's in dlib's box."""
    names = ["dlib"] + (["Face Mesh"] if mesh else [])
    read = {name: (np.full(len(faces), math.nan), np.full(len(faces), math.nan)) for name in names}
    for i, face in enumerate(faces):
        found = detector.detect(face)
        if found:
            read["dlib"][0][i], read["dlib"][1][i] = mouth_opening(found[0].landmarks), mouth_width(found[0].landmarks)
        if found and mesh:
            read["Face Mesh"][0][i], read["Face Mesh"][1][i] = mesh.mouth(face, found[0].box)
    return read


def row(driver: int, judge_name: str, what: str, read: tuple[np.ndarray, np.ndarray], exact: np.ndarray
        ) -> tuple[str, float, float]:
    """A table row of one judge's reading against the driver's exact opening and width, and the two r."""
    r_open, r_width = pearson(read[0], mouth_opening(exact)), pearson(read[1], mouth_width(exact))
    return (f"| held-out id {driver} | {judge_name} | {what} | {np.isfinite(read[0]).mean():.0%} | {r_open:.2f} | "
            f"{r_width:.2f} |", r_open, r_width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="checkpoints")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--drivers", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--generator", action="store_true", help="also render warp + generator")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--sheet", type=Path, help="a PNG: driver | result at the widest, narrowest, most open")
    parser.add_argument("--mesh-model", type=Path, help="face_landmark.tflite (benchmarks/mesh_judge.py): a 2nd judge")
    args = parser.parse_args()
    torch.set_num_threads(2)
    pipe = TalkingHeadPipeline.from_pretrained(args.weights, device="cpu", landmark_backend="dlib")
    avatar = pipe.personalize([PHOTO], steps=0)
    detector, mesh = get_detector("dlib"), MeshJudge(args.mesh_model) if args.mesh_model else None
    methods = {"warp (default)": False} | ({"warp + G": True} if args.generator else {})
    lines = [f"Machine: {cpu_name()}; {args.frames} frames a driver, {args.size} px; "
             f"photo {PHOTO.name}; weights {args.weights}", "",
             "| driver | judge | what | faces found | opening r | width r |", "|---|---|---|---|---|---|"]
    sheet_rows, scores = [], {}
    for identity in identities_of("heldout", args.drivers):
        frames, exact = render_video(identity, 0, args.frames, args.size)
        targets = retarget_batch(Retargeter(avatar.source_landmarks), list(exact), avatar.source_landmarks)
        # Two references: what retargeting asks of the warp (exact landmarks, no judge), and how well each judge
        # reads the driver's own frames (its ceiling on this driver).
        lines.append(row(identity, "none", "retargeted landmarks (no render)",
                         (mouth_opening(targets), mouth_width(targets)), exact)[0])
        readings = {"the driver's own frames": judge(detector, frames, mesh)}
        for name, generator in methods.items():
            with torch.inference_mode():
                faces = np.concatenate([render_faces(avatar, targets[i:i + 16], args.size, generator=generator)
                                        for i in range(0, len(targets), 16)])
            readings[name] = judge(detector, faces, mesh)
            if args.sheet and not generator:
                picks = [int(np.argmax(mouth_width(exact))), int(np.argmin(mouth_width(exact))),
                         int(np.argmax(mouth_opening(exact)))]
                sheet_rows += [np.concatenate([frames[p], faces[p]], axis=1) for p in picks]
        for what, by_judge in readings.items():
            for judge_name, read in by_judge.items():
                line, r_open, r_width = row(identity, judge_name, what, read, exact)
                scores.setdefault((judge_name, what), []).append((r_open, r_width))
                lines.append(line)
                print(line, flush=True)
    lines.append("")
    for (judge_name, what), rs in scores.items():
        mean_open, mean_width = np.nanmean([r[0] for r in rs]), np.nanmean([r[1] for r in rs])
        lines.append(f"Mean, {judge_name}, {what}: opening r {mean_open:.2f}, width r {mean_width:.2f} "
                     f"(target >= {TARGET_R})")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)
    if args.sheet:
        cv2.imwrite(str(args.sheet), cv2.cvtColor(np.concatenate(sheet_rows, axis=0), cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
