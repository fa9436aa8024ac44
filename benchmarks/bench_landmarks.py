"""Landmark speed of the offline dlib backend, printed as a markdown table; optionally (--figures DIR)
also writes the README's landmark figures.

    python benchmarks/bench_landmarks.py [--repeats 50] [--figures docs]

Rows: a 256x256 face crop (a driving-video frame after cropping), the 512x512 astronaut photo, and a
1920x1080 webcam-like frame (searched on a 640-pixel copy, landmarked at full resolution).
"detect + 68 points" runs the face detector every frame; "68 points in previous box" is the tracking
path (``DlibBackend.landmarks_in_box``).
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from talking_head.landmarks import crop_face, detect_face, draw_landmarks, get_detector


def per_second(function: Callable[[], object], repeats: int) -> float:
    function()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return repeats / (time.perf_counter() - start)


def frames() -> dict[str, np.ndarray]:
    astronaut = data.astronaut()
    crop, _ = crop_face(astronaut, detect_face(astronaut, get_detector("dlib")).landmarks, 256)
    # A webcam-like frame: the face about 400 pixels tall, on a flat background.
    webcam = np.zeros((1080, 1920, 3), np.uint8)
    webcam[:] = crop[0, 0]
    webcam[180:900, 600:1320] = cv2.resize(crop, (720, 720), interpolation=cv2.INTER_CUBIC)
    return {"256x256 face crop": crop, "512x512 photo (face 88 px)": astronaut, "1920x1080 webcam frame": webcam}


def write_figures(folder: Path) -> None:
    """docs/landmarks_astronaut.png (photo + detected landmarks) and docs/landmarks_rasterized.png
    (the 256 crop next to the landmark image the generator sees)."""
    folder.mkdir(parents=True, exist_ok=True)
    astronaut = data.astronaut()
    landmarks = detect_face(astronaut, get_detector("dlib")).landmarks
    drawing = draw_landmarks(landmarks, astronaut.shape[:2], thickness=1)
    blended = np.where(drawing.any(axis=-1, keepdims=True), (0.15 * astronaut + 0.85 * drawing).astype(np.uint8),
                       astronaut)
    crop, crop_landmarks = crop_face(astronaut, landmarks, 256)
    side_by_side = np.concatenate([crop, draw_landmarks(crop_landmarks, 256)], axis=1)
    for name, image in (("landmarks_astronaut.png", blended), ("landmarks_rasterized.png", side_by_side)):
        cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        print(f"wrote {folder / name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--figures", type=Path, help="also write the landmark figures into this folder")
    args = parser.parse_args()
    detector = get_detector("dlib")
    cv2.setNumThreads(1)
    print(f"dlib backend, one thread, {platform.processor() or platform.machine()}\n")
    print("| frame | detect + 68 points (frames/s) | 68 points in previous box (frames/s) |")
    print("|---|---|---|")
    for name, frame in frames().items():
        box = detect_face(frame, detector).box
        full = per_second(lambda: detect_face(frame, detector), args.repeats)
        tracked = per_second(lambda: detector.landmarks_in_box(frame, box), args.repeats)
        print(f"| {name} | {full:.0f} | {tracked:.0f} |")
    if args.figures:
        write_figures(args.figures)


if __name__ == "__main__":
    main()
