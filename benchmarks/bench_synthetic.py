"""Rendering speed of the synthetic talking-head dataset: frames per second per resolution.

``render_video`` renders a clip as one batch on a single thread (by design: see synthetic_render),
so one process is one core; ``generate_dataset(..., workers=N)`` scales with processes. Prints a
markdown table: one process (wall clock, and per CPU-second of the process, which other jobs on a
shared machine disturb less), and N processes rendering different clips at once.

    python benchmarks/bench_synthetic.py [--frames 32] [--videos 6] [--workers 2]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from talking_head.data.synthetic import render_video


def _render(args: tuple[int, int, int]) -> int:
    video, frames, size = args
    render_video(1 + video, video, frames, size)
    return frames


def frames_per_second(size: int, frames: int, videos: int, workers: int) -> tuple[float, float]:
    """(frames per wall-clock second, frames per CPU second of this process: robust to other load)."""
    jobs = [(video, frames, size) for video in range(videos)]
    if workers == 1:
        _render((99, frames, size))  # warm-up
        start, cpu = time.perf_counter(), time.process_time()
        done = sum(map(_render, jobs))
        return done / (time.perf_counter() - start), done / (time.process_time() - cpu)
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        list(pool.map(_render, [(99 + w, frames, size) for w in range(workers)]))  # warm-up every worker
        start = time.perf_counter()
        done = sum(pool.map(_render, jobs))
        return done / (time.perf_counter() - start), float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=32, help="frames per clip (one batch)")
    parser.add_argument("--videos", type=int, default=6, help="clips timed per resolution")
    parser.add_argument("--workers", type=int, default=2, help="processes for the second column")
    args = parser.parse_args()
    print(f"| resolution | frames/s (1 process) | frames per CPU-second | frames/s ({args.workers} processes) |")
    print("|---|---|---|---|")
    for size in (64, 128, 256):
        single, per_cpu = frames_per_second(size, args.frames, args.videos, 1)
        multi, _ = frames_per_second(size, args.frames, args.videos, args.workers)
        print(f"| {size}x{size} | {single:.0f} | {per_cpu:.0f} | {multi:.0f} |")


if __name__ == "__main__":
    main()
