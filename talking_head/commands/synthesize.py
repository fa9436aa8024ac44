"""``python -m talking_head synthesize``: render the synthetic dataset into a folder (resumable)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from talking_head.data.synthetic import SyntheticConfig, generate_dataset
from talking_head.options import add_dataclass_arguments, dataclass_from_args, option


@dataclass
class SynthesizeOptions:
    out: str = option("data/synthetic", "dataset folder to write (existing videos are kept: resumable)")
    identities: int = option(1000, "number of identities")
    videos_per_identity: int = option(2, "videos per identity")
    image_size: int = option(128, "frame size in pixels")
    frames_per_video: int = option(32, "frames per video")
    seed: int = option(0, "master seed (same seed, same dataset)")
    heldout_fraction: float = option(0.1, "share of identities kept out of training")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, SynthesizeOptions)


def main(args: argparse.Namespace) -> None:
    o = dataclass_from_args(SynthesizeOptions, args)
    config = SyntheticConfig(image_size=o.image_size, frames_per_video=o.frames_per_video, seed=o.seed,
                             heldout_fraction=o.heldout_fraction)
    records = generate_dataset(o.out, o.identities, o.videos_per_identity, config)
    heldout = sum(r.split == "heldout" for r in records)
    print(f"{o.out}: {len(records)} videos ({heldout} held-out)")
