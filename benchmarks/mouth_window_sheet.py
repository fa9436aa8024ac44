"""The mouth-window generator on a real photo, beside the warp: docs/mouth_window_real.jpg.

scikit-image's astronaut driven by ``examples/driver.mp4`` (every third frame, dlib's landmarks, relative
retargeting as ``animate`` does), the driver's three most open frames, rendered at 512 px by the warp (left) and
the warp with ``--mouth`` (right), cropped to the lower face. Feed-forward, the shipped checkpoint.

    python benchmarks/mouth_window_sheet.py [--weights checkpoints] [--out docs/mouth_window_real.jpg]
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

from talking_head.face_render import render_faces
from talking_head.landmarks.align import Retargeter
from talking_head.landmarks.detect import get_detector
from talking_head.landmarks.mouth import mouth_opening
from talking_head.media import iter_video_frames
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import retarget_batch

SIZE, ROWS, COLS = 512, slice(160, 416), slice(96, 416)


def driver_landmarks(path: str, every: int = 3, count: int = 40) -> np.ndarray:
    """dlib's landmarks of every ``every``-th frame of ``path`` where it finds a face, at most ``count``."""
    detector, found = get_detector("dlib"), []
    for i, frame in enumerate(iter_video_frames(path)):
        if i % every == 0 and (faces := detector.detect(frame)):
            found.append(faces[0].landmarks)
        if len(found) >= count:
            break
    return np.array(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="checkpoints")
    parser.add_argument("--out", default="docs/mouth_window_real.jpg")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipe = TalkingHeadPipeline.from_pretrained(args.weights, device="cpu", landmark_backend="dlib")
    avatar = pipe.personalize(["examples/astronaut.jpg"], steps=0)
    driver = driver_landmarks("examples/driver.mp4")
    widest = np.argsort(-mouth_opening(driver))[:3]
    targets = retarget_batch(Retargeter(avatar.source_landmarks), list(driver), avatar.source_landmarks)[widest]
    with torch.inference_mode():
        warp, mouth = (render_faces(avatar, targets, SIZE, mouth=on) for on in (False, True))
    rows = [np.concatenate([w[ROWS, COLS], m[ROWS, COLS]], axis=1) for w, m in zip(warp, mouth)]
    cv2.imwrite(args.out, cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(args.out)


if __name__ == "__main__":
    main()
