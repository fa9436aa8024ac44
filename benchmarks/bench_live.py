"""Live mode's speed: frames/s and camera-to-output latency of the live loop (``talking_head.live``), and
where the time goes; printed as markdown tables.

    python benchmarks/bench_live.py --weights checkpoints [--photo examples/astronaut.jpg]
        [--driver examples/driver.mp4] [--size 256] [--fps 25] [--threads 2] [--precision fp32 bf16]
        [--before REV [--repeats 2]]

The avatar is the photo personalised feed-forward (0 steps) with the weights. The loop is the live
command's: ``run_live``, the next frame's landmarks and warp prepared on a thread of their own while
this one is generated. The driver's frames are released at ``--fps`` by ``CameraFeed``, as a camera
would: the loop always takes the newest frame and drops the ones it was too slow for, so "latency" is
what a viewer sees, from a frame's capture to its generated image being ready (display not included).
A second row per precision runs every frame back to back (no camera clock): the loop's own capacity.
Stages are medians per frame: landmarks (``FaceTracker``), retarget (smoothing + relative
retargeting), warp (``render.texture_for``), generate (G, its paint region, the conversion to pixels)
and the mark. The last lines time the warp alone with the spline evaluated on a coarser grid
(``texture_for``'s ``grid_size``; live mode uses ``LiveConfig.spline_grid``) and say how far its pixels move.

``--before REV`` also runs REV's own copy of this script (REV checked out in a temporary worktree and
imported from there: the live loop as it was), alternated with this tree's ``--repeats`` times, fp32:
side by side on the same load. The first line gives the load average: on a shared 2-core machine other
jobs slow every figure.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from talking_head import warp
from talking_head.face_render import texture_for
from talking_head.live import STAGES, CameraFeed, LiveConfig, LiveFrame, LiveSession, run_live
from talking_head.media import iter_video_frames, probe_video
from talking_head.pipeline import TalkingHeadPipeline

ROOT = Path(__file__).resolve().parents[1]
WARM_UP = 5  # frames run through a throwaway session first (first calls allocate and load)


def run(session: LiveSession, frames: list[np.ndarray], fps: float | None) -> tuple[list[LiveFrame], float, int]:
    """The loop over ``frames`` released at ``fps`` (None: back to back): what it showed, wall seconds, drops."""
    began = time.monotonic()
    if fps is None:
        return list(run_live(frames, session.avatar, session=session)), time.monotonic() - began, 0
    with CameraFeed(frames, fps=fps) as feed:
        shown = list(run_live(feed, session.avatar, session=session))
    return shown, time.monotonic() - began, feed.dropped


def warp_ms(avatar, targets: np.ndarray, size: int, grid: int, repeats: int = 10) -> tuple[float, torch.Tensor]:
    """Median ms of ``texture_for`` on ``targets`` with the spline on a ``grid``-point grid, and its output."""
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            start = time.perf_counter()
            out = texture_for(avatar, targets, size, grid)
            times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times)), out


def grid_rows(avatar, targets: np.ndarray, size: int) -> None:
    """The warp alone at warp.GRID_SIZE and at coarser grids, and how far pixels move."""
    shipped = warp.GRID_SIZE
    base_ms, base = warp_ms(avatar, targets, size, shipped)
    print(f"\nwarp alone at {size} px, spline evaluated on a {shipped}-point grid: {base_ms:.1f} ms")
    for grid in (64, 32):
        ms, out = warp_ms(avatar, targets, size, grid)
        diff = (out - base).abs() * 127.5  # [-1, 1] -> 0-255 pixel values
        print(f"- {grid}-point grid: {ms:.1f} ms ({ms / base_ms:.2f}x); pixels move by {diff.mean():.2f} on "
              f"average, {diff.max():.0f} at most (0-255)")


def before_after(args: argparse.Namespace) -> None:
    """This tree's script and REV's own, alternated, fp32, each in a process of its own (see the docstring)."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(before), args.before], check=True,
                       capture_output=True)
        try:
            common = ["--weights", str(Path(args.weights).resolve()), "--photo", str(args.photo.resolve()),
                      "--driver", str(args.driver.resolve()), "--size", str(args.size), "--fps", str(args.fps),
                      "--threads", str(args.threads), "--precision", "fp32"]
            for run in range(args.repeats):
                for name, tree in ((f"before ({args.before})", before), ("after (this tree)", root)):
                    print(f"\n### {name}, run {run + 1}\n", flush=True)
                    result = subprocess.run([sys.executable, str(tree / "benchmarks" / "bench_live.py"), *common],
                                            cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                                            capture_output=True, text=True, check=True)
                    print(result.stdout, flush=True)
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(before)], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(ROOT / "checkpoints"))
    parser.add_argument("--photo", type=Path, default=ROOT / "examples" / "astronaut.jpg")
    parser.add_argument("--driver", type=Path, default=ROOT / "examples" / "driver.mp4")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--before", help="also run this revision's copy of the script, alternated with this tree's")
    parser.add_argument("--repeats", type=int, default=2, help="with --before: runs of each")
    args = parser.parse_args()
    if args.before:
        before_after(args)
        return
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    pipe = TalkingHeadPipeline.from_pretrained(args.weights, device="cpu", landmark_backend="dlib")
    avatar = pipe.personalize([args.photo], steps=0)
    info = probe_video(args.driver)
    frames = list(iter_video_frames(args.driver, decoded=info))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} with "
          f"{args.threads} threads; load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 "
          f"min); {args.driver.name}: {len(frames)} frames of {info.width}x{info.height}; output {args.size} px\n")
    print("| precision | camera | frames shown / captured | output frames/s | latency median (ms) | latency p95 (ms) |"
          " " + " | ".join(f"{stage} (ms)" for stage in STAGES) + " | the warp alone (ms) |")
    print("|---|---|---|---|---|---|" + "---|" * (len(STAGES) + 1))
    for precision in args.precision:
        config = LiveConfig(output_size=args.size, camera_fps=args.fps, bf16=precision == "bf16")
        for fps in (args.fps, None):
            run(LiveSession(avatar, config, pipe.detector), frames[:WARM_UP], None)
            session = LiveSession(avatar, config, pipe.detector)
            shown, seconds, dropped = run(session, frames, fps)
            latency = np.array([s.latency_ms for s in shown])
            stages = " | ".join(f"{np.median([s.timings_ms[stage] for s in shown]):.1f}" for stage in STAGES)
            targets = session.retargeter(session.retargeter.reference)[None]
            camera = f"{args.fps:g} fps" if fps else "none (back to back)"
            print(f"| {precision} | {camera} | {len(shown)} / {len(shown) + dropped} | "
                  f"{len(shown) / seconds:.1f} | "
                  f"{np.median(latency):.0f} | {np.percentile(latency, 95):.0f} | {stages} | "
                  f"{warp_ms(avatar, targets, args.size, config.spline_grid)[0]:.1f} |")
    grid_rows(avatar, targets, args.size)
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")


if __name__ == "__main__":
    main()
