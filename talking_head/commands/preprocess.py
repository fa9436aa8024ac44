"""``python -m talking_head preprocess``: real videos in the VoxCeleb layout -> a dataset folder (resumable)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from talking_head.data.video import person_split, preprocess_videos
from talking_head.landmarks.detect import get_detector
from talking_head.options import add_dataclass_arguments, dataclass_from_args, option, required


@dataclass
class PreprocessOptions:
    src: str = required("folder of videos laid out as <person>/<video>/<clip>.mp4 (VoxCeleb1/2)")
    dst: str = option("data/voxceleb", "dataset folder to write (clips already there are kept: resumable)")
    image_size: int = option(128, "crop size in pixels")
    every: int = option(1, "keep every n-th frame")
    max_frames: int | None = option(None, "keep at most this many face frames per clip")
    min_frames: int = option(2, "leave out clips with fewer face frames than this")
    heldout_fraction: float = option(0.0, "share of people marked held-out, chosen by a hash of their name "
                                          "(stable across runs); 1 marks a whole test set held-out")
    landmarks: str = option("auto", "landmark backend", choices=["auto", "face_alignment", "dlib"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, PreprocessOptions)


def main(args: argparse.Namespace) -> None:
    o = dataclass_from_args(PreprocessOptions, args)
    if not 0.0 <= o.heldout_fraction <= 1.0:
        raise SystemExit(f"--heldout-fraction must be in [0, 1], got {o.heldout_fraction}")
    records = preprocess_videos(o.src, o.dst, image_size=o.image_size, every=o.every, max_frames=o.max_frames,
                                min_frames=o.min_frames, detector=get_detector(o.landmarks),
                                split_of=lambda person: person_split(person, o.heldout_fraction))
    heldout = sum(r.split == "heldout" for r in records)
    print(f"{o.dst}: {len(records)} clips of {len({r.person for r in records})} people ({heldout} held-out clips)")
