"""The texture stage alone (``render.texture_for``: choose shots, fit and evaluate the spline, sample the
bank, shade the mouth), ms per frame, this tree against an earlier revision, side by side.

Each measurement runs in a fresh child process that imports the package from the revision's tree (a
temporary git worktree), personalises the astronaut feed-forward with the given weights, retargets the
first 64 frames of ``examples/driver.mp4`` onto her and times ``texture_for`` over them in batches of 8
(after one warm-up batch). The two revisions alternate ``--repeats`` times so both see the same load.

    python benchmarks/bench_warp.py --before REV [--weights checkpoints] [--sizes 256 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench_pipeline import ROOT, git_worktree, machine

CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[2]))
from talking_head.face_render import texture_for
from talking_head.landmarks.align import Retargeter
from talking_head.limits import Limits
from talking_head.media import iter_video_frames, probe_driver
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import RenderConfig, retarget_batch
pipe = TalkingHeadPipeline.from_pretrained(sys.argv[1], device="cpu", landmark_backend="dlib")
avatar = pipe.personalize([sys.argv[3]], steps=0)
info = probe_driver(sys.argv[4], Limits())
frames = list(iter_video_frames(sys.argv[4], None, info))[:64]
retargeter = Retargeter(avatar.source_landmarks, RenderConfig().retarget)
driver = [pipe.detector.detect(frame)[0].landmarks for frame in frames]
batches = [retarget_batch(retargeter, driver[i:i + 8], avatar.source_landmarks) for i in range(0, len(driver), 8)]
times = {}
with torch.inference_mode():
    for size in json.loads(sys.argv[5]):
        texture_for(avatar, batches[0], size)
        began = time.perf_counter()
        for targets in batches:
            texture_for(avatar, targets, size)
        times[size] = (time.perf_counter() - began) * 1000 / len(frames)
print(json.dumps(times))
"""


def timed_texture(code_root: Path, args: argparse.Namespace) -> dict[str, float]:
    """ms per frame of ``texture_for`` at each of ``args.sizes``, the package imported from ``code_root``."""
    env = {**os.environ, "PYTHONPATH": str(code_root), "OMP_NUM_THREADS": str(args.threads)}
    weights = str(Path(args.weights).resolve()) if Path(args.weights).exists() else args.weights
    result = subprocess.run([sys.executable, "-c", CHILD, weights, str(args.threads), str(ROOT / "examples" / "astronaut.jpg"),
                             str(ROOT / "examples" / "driver.mp4"), json.dumps(args.sizes)],
                            cwd=code_root, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the git revision to compare this tree with")
    parser.add_argument("--weights", default=str(ROOT / "checkpoints"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        before = git_worktree(args.before, Path(folder) / "before")
        try:
            print(f"## texture_for, ms per frame (64 driver frames, batches of 8, {args.threads} threads): "
                  f"before {args.before} vs this tree\n\n{machine()} at start\n")
            print("| output px | run | before ms | after ms | after / before |\n|---|---|---|---|---|")
            runs = [(timed_texture(before, args), timed_texture(ROOT, args)) for _ in range(args.repeats)]
            for size in map(str, args.sizes):
                ratios = [after[size] / old[size] for old, after in runs]
                for run, (old, after) in enumerate(runs, 1):
                    print(f"| {size} | {run} | {old[size]:.1f} | {after[size]:.1f} | {after[size] / old[size]:.2f} |")
                print(f"| {size} | median | | | {np.median(ratios):.2f} |")
            print(f"\n{machine()} at the end")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], capture_output=True)


if __name__ == "__main__":
    main()
