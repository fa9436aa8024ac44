"""Live mode's speed: frames/s and camera-to-output latency of the live loop (``talking_head.live``), and
where the time goes; printed as markdown tables.

    python benchmarks/bench_live.py --weights checkpoints [--photo examples/astronaut.jpg]
        [--driver examples/driver.mp4] [--size 256] [--fps 25] [--threads 2] [--precision fp32 bf16]

The avatar is the photo personalised feed-forward (0 steps) with the weights. The driver's frames are
released at ``--fps`` by ``CameraFeed``, as a camera would: the loop always takes the newest frame and
drops the ones it was too slow for, so "latency" is what a viewer sees, from a frame's capture to its
generated image being ready (display not included). A second row per precision runs every frame back
to back (no camera clock): the loop's own capacity. Stages are medians per frame: landmarks (dlib,
searched near the last face first), retarget (smoothing + relative retargeting), warp+generate
(``render_faces``; "of which the warp" times ``render.texture_for`` alone on the same targets) and the
mark. The first line gives the load average: on a shared 2-core machine other jobs slow every figure.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from talking_head.live import STAGES, CameraFeed, LiveConfig, LiveFrame, LiveSession
from talking_head.media import iter_video_frames, probe_video
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import texture_for

ROOT = Path(__file__).resolve().parents[1]
WARM_UP = 5  # frames run through a throwaway session first (first calls allocate and load)


def run(session: LiveSession, frames: list[np.ndarray], fps: float | None) -> tuple[list[LiveFrame], float, int]:
    """The loop over ``frames`` released at ``fps`` (None: back to back): what it showed, wall seconds, drops."""
    began = time.monotonic()
    if fps is None:
        return [session.step(frame) for frame in frames], time.monotonic() - began, 0
    with CameraFeed(frames, fps=fps) as feed:
        shown = [session.step(frame, captured_at) for frame, captured_at in feed]
    return shown, time.monotonic() - began, feed.dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(ROOT / "checkpoints"))
    parser.add_argument("--photo", type=Path, default=ROOT / "examples" / "astronaut.jpg")
    parser.add_argument("--driver", type=Path, default=ROOT / "examples" / "driver.mp4")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    args = parser.parse_args()
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
          " " + " | ".join(f"{stage} (ms)" for stage in STAGES) + " | of which the warp (ms) |")
    print("|---|---|---|---|---|---|" + "---|" * (len(STAGES) + 1))
    for precision in args.precision:
        config = LiveConfig(output_size=args.size, camera_fps=args.fps, bf16=precision == "bf16")
        for fps in (args.fps, None):
            run(LiveSession(avatar, config, pipe.detector), frames[:WARM_UP], None)
            session = LiveSession(avatar, config, pipe.detector)
            shown, seconds, dropped = run(session, frames, fps)
            counted = shown
            latency = np.array([s.latency_ms for s in counted])
            stages = " | ".join(f"{np.median([s.timings_ms[stage] for s in counted]):.1f}" for stage in STAGES)
            targets = session.retargeter(session.retargeter.reference)[None]
            warp_ms = []
            with torch.inference_mode():
                for _ in range(10):
                    start = time.perf_counter()
                    texture_for(avatar, targets, args.size)
                    warp_ms.append((time.perf_counter() - start) * 1000)
            camera = f"{args.fps:g} fps" if fps else "none (back to back)"
            print(f"| {precision} | {camera} | {len(shown)} / {len(shown) + dropped} | "
                  f"{len(shown) / seconds:.1f} | "
                  f"{np.median(latency):.0f} | {np.percentile(latency, 95):.0f} | {stages} | "
                  f"{np.median(warp_ms):.1f} |")
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")


if __name__ == "__main__":
    main()
