"""Rendering speed of the synthetic talking-head dataset: frames per second per resolution.

Batched over a clip (``render_video`` renders all its frames at once), one thread and two, on
whatever CPU runs it. Prints a markdown table.

    python benchmarks/bench_synthetic.py [--frames 32] [--videos 4]
"""

from __future__ import annotations

import argparse
import time

import torch

from talking_head.data.synthetic import render_video


def frames_per_second(size: int, frames: int, videos: int) -> float:
    render_video(0, 0, frames, size)  # warm-up (allocator, caches)
    start = time.perf_counter()
    for video in range(videos):
        render_video(1 + video, video, frames, size)
    return frames * videos / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=32, help="frames per clip (one batch)")
    parser.add_argument("--videos", type=int, default=4, help="clips timed per resolution")
    args = parser.parse_args()
    print("| resolution | frames/s (1 thread) | frames/s (2 threads) |")
    print("|---|---|---|")
    for size in (64, 128, 256):
        rates = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            rates.append(frames_per_second(size, args.frames, args.videos))
        print(f"| {size}x{size} | {rates[0]:.0f} | {rates[1]:.0f} |")


if __name__ == "__main__":
    main()
