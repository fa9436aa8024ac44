"""End-to-end speed and memory of the pipeline: photos + driving video -> mp4.

Each measurement runs in a fresh child process so its peak resident memory (VmHWM) is its own:

- animate N frames (default 300 and 3000) with one avatar: peak RSS must not grow with N (streaming);
- personalise on K photos (default 1 and 32) for --steps steps: time and peak RSS;
- end to end: one photo + a 10 s driver -> mp4, fine-tuned for --steps steps;
- before-after (issue 17's measure): the whole ``python -m talking_head animate --steps 0`` command for the
  astronaut and a 20 s, 25 fps driver (examples/driver.mp4 looped) at each --sizes, this tree's revision
  against --before (a git revision, checked out in a temporary worktree and imported from there),
  alternated --repeats times in one run so that both see the same load; wall time against the video's
  duration;
- budget: each rendering stage alone, one after another, over the 20 s driver in this process: ms per
  frame for decode, landmarks (per-frame detection and the tracker), retarget, warp, generate (G, its
  paint region and the conversion to pixels), composite (fitting the face into the panel, the layout,
  the mark) and encode (the pipe to ffmpeg and its x264), batches of 8.

"peak RSS" is the process's high-water mark, "end RSS" its resident memory when the job is done: a
stream that kept frames would show both growing with N. Every table says the load average before and
after: on a shared 2-core machine other jobs slow every figure, ratios measured side by side less so.

    python benchmarks/bench_pipeline.py [--weights checkpoints] [--frames 300 3000] [--shots 1 32] [--steps 40]
                                        [--jobs animate personalize end-to-end before-after budget]
                                        [--before REV] [--sizes 256 512] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import torch

from talking_head.finetune import FinetuneConfig

CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[5]))
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import RenderConfig
job, weights, photos, driver = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
steps, out = int(sys.argv[6]), sys.argv[7]
pipe = TalkingHeadPipeline.from_pretrained(weights, device="cpu", landmark_backend="dlib")
began = time.perf_counter()
avatar = pipe.personalize(photos, steps=steps)
personalized = time.perf_counter() - began
frames = 0
if job != "personalize":
    frames = pipe.animate(avatar, driver, out, RenderConfig(max_seconds=3600)).num_frames
status = {l.split(":")[0]: int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("Vm")}
print(json.dumps({"personalize_s": personalized, "total_s": time.perf_counter() - began, "frames": frames,
                  "peak_rss_mib": status["VmHWM"], "end_rss_mib": status["VmRSS"]}))
"""


JOBS = ("animate", "personalize", "end-to-end", "before-after", "budget")
ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "astronaut.jpg"
DRIVER_SECONDS = 20


def run_child(job: str, weights: str, photos: list[str], driver: str, threads: int, steps: int, out: str) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, job, weights, json.dumps(photos), driver, str(threads),
                             str(steps), out], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def looped_driver(folder: Path, frames: int, base: Path) -> Path:
    """A driver of ``frames`` frames: the base clip repeated (ffmpeg stream copy, audio kept)."""
    import imageio_ffmpeg

    from talking_head.media import probe_video

    info = probe_video(base)
    loops = -(-frames // info.num_frames)
    path = folder / f"driver_{frames}.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-stream_loop", str(loops - 1),
                    "-i", str(base), "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast",
                    "-c:a", "aac", str(path)], check=True)
    return path


def machine() -> str:
    """The CPU, its cores and the load average: what a figure was measured on."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or platform.machine())
    load = os.getloadavg()
    return f"{model}, {os.cpu_count()} cores; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min)"


def git_worktree(revision: str, folder: Path) -> Path:
    """``revision`` checked out (detached) in ``folder``, a worktree of this repository."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(folder), revision],
                   check=True, capture_output=True)
    return folder


def timed_animate(code_root: Path, weights: str, driver: Path, size: int, threads: int, out: Path,
                  flags: tuple[str, ...] = ()) -> float:
    """Wall seconds of the whole ``animate --steps 0`` command (plus ``flags``), run with the package imported from
    ``code_root``."""
    env = {**os.environ, "PYTHONPATH": str(code_root), "OMP_NUM_THREADS": str(threads)}
    weights = str(Path(weights).resolve()) if Path(weights).exists() else weights  # the same for both trees
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "talking_head", "animate", "--photos", str(PHOTO), "--driver", str(driver),
                    "--out", str(out), "--steps", "0", "--output-size", str(size), "--weights", weights,
                    "--landmarks", "dlib", "--device", "cpu", *flags], cwd=code_root, env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - began


def before_after(args: argparse.Namespace, folder: Path, driver: Path) -> None:
    before = git_worktree(args.before, folder / "before")
    after = git_worktree(args.after, folder / "after") if args.after else ROOT
    try:
        revisions = {name: subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], check=True,
                                          capture_output=True, text=True).stdout.strip()
                     for name, root in (("before", before), ("after", after))}
        dirty = subprocess.run(["git", "-C", str(after), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        print(f"## animate --steps 0, {DRIVER_SECONDS} s driver at 25 fps: before {args.before} ({revisions['before']}) "
              f"{args.before_flags} vs after {args.after or 'this tree'} ({revisions['after']}"
              f"{', with uncommitted changes' if dirty else ''}) {args.after_flags}, {args.threads} threads\n\n"
              f"{machine()} at start\n")
        print("| output px | run | before s | after s | after / before | after vs real time |")
        print("|---|---|---|---|---|---|")
        for size in args.sizes:
            ratios = []
            for run in range(args.repeats):
                old = timed_animate(before, args.weights, driver, size, args.threads, folder / "before.mp4",
                                    tuple(args.before_flags.split()))
                new = timed_animate(after, args.weights, driver, size, args.threads, folder / "after.mp4",
                                    tuple(args.after_flags.split()))
                ratios.append(new / old)
                print(f"| {size} | {run + 1} | {old:.1f} | {new:.1f} | {new / old:.2f} | "
                      f"{DRIVER_SECONDS / new:.2f}x |", flush=True)
            print(f"| {size} | median | | | {np.median(ratios):.2f} | |", flush=True)
        print(f"\n{machine()} at the end\n")
    finally:
        for tree in {before, after} - {ROOT}:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)


def budget(args: argparse.Namespace, driver: Path) -> None:
    """Each stage alone over the driver, one after another, in this process (see the module's docstring)."""
    from talking_head.face_render import generate_faces, texture_for
    from talking_head.landmarks.align import Retargeter
    from talking_head.landmarks.smooth import CentredSmoother
    from talking_head.landmarks.track import FaceTracker
    from talking_head.limits import Limits
    from talking_head.media import VideoSink, iter_video_frames, probe_driver
    from talking_head.pipeline import TalkingHeadPipeline
    from talking_head.render import FrameLayout, RenderConfig, fit_height, retarget_batch

    torch.set_num_threads(args.threads)
    pipe = TalkingHeadPipeline.from_pretrained(args.weights, device="cpu", landmark_backend="dlib")
    avatar = pipe.personalize([PHOTO], steps=0)
    info = probe_driver(driver, Limits())
    print(f"## Per-frame budget: each stage alone over the {DRIVER_SECONDS} s driver ({info.num_frames} frames of "
          f"{info.width}x{info.height}), batches of 8, {args.threads} threads\n\n{machine()} at start\n")

    def per_frame(seconds: float) -> str:
        return f"{seconds * 1000 / info.num_frames:.1f}"

    began = time.perf_counter()
    frames = list(iter_video_frames(driver, None, info))
    decode = time.perf_counter() - began
    began = time.perf_counter()
    for frame in frames:
        pipe.detector.detect(frame)
    detect = time.perf_counter() - began
    tracker = FaceTracker(pipe.detector)
    began = time.perf_counter()
    driver_landmarks = list(CentredSmoother().sequence(np.stack([tracker(frame).landmarks for frame in frames])))
    track = time.perf_counter() - began
    rows = []
    for size in args.sizes:
        config = RenderConfig(output_size=size)
        layout = FrameLayout.plan([avatar], (info.width, info.height), config, None, pipe.limits)
        retargeter = Retargeter(avatar.source_landmarks, config.retarget)
        times = dict.fromkeys(("retarget", "warp", "generate", "composite", "encode"), 0.0)
        with VideoSink(Path(tempfile.gettempdir()) / f"budget_{size}.mp4", layout.width, layout.height,
                       info.fps) as sink, torch.inference_mode():
            for start in range(0, len(frames), config.batch_size):
                batch = slice(start, start + config.batch_size)
                mark = time.perf_counter()
                targets = retarget_batch(retargeter, driver_landmarks[batch], avatar.source_landmarks)
                times["retarget"] += time.perf_counter() - mark
                mark = time.perf_counter()
                warped = texture_for(avatar, targets, size)
                times["warp"] += time.perf_counter() - mark
                mark = time.perf_counter()
                faces = generate_faces(avatar, targets, size, warped)
                times["generate"] += time.perf_counter() - mark
                mark = time.perf_counter()
                out = [layout.compose(frame, [fit_height(face, layout.height)])
                       for frame, face in zip(frames[batch], faces)]
                times["composite"] += time.perf_counter() - mark
                mark = time.perf_counter()
                for image in out:
                    sink.write(image)
                times["encode"] += time.perf_counter() - mark
            mark = time.perf_counter()
        times["encode"] += time.perf_counter() - mark  # ffmpeg finishing the file
        rows.append((size, times))
    print("| output px | decode | landmarks: detect every frame | landmarks: tracker + smoothing (detector on "
          f"{tracker.detections} of {len(frames)}) | retarget | warp | generate | composite | encode | sum (tracker) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size, times in rows:
        total = decode + track + sum(times.values())
        print(f"| {size} | {per_frame(decode)} | {per_frame(detect)} | {per_frame(track)} | "
              + " | ".join(per_frame(times[k]) for k in ("retarget", "warp", "generate", "composite", "encode"))
              + f" | {per_frame(total)} |")
    print(f"\nms per frame; a 25 fps video needs 40 ms a frame for real time, 20 for twice.\n\n{machine()} at the end\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="checkpoints", help="checkpoint folder or repo id")
    parser.add_argument("--frames", type=int, nargs="+", default=[300, 3000])
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--steps", type=int, default=FinetuneConfig().steps)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--jobs", nargs="+", choices=JOBS, default=list(JOBS), help="which measurements to run")
    parser.add_argument("--before", default="HEAD", help="before-after: the revision to compare with")
    parser.add_argument("--after", help="before-after: a revision to compare (default: this tree as it is)")
    parser.add_argument("--before-flags", default="", help="before-after: more animate flags for the before run "
                        "(e.g. --before HEAD --before-flags=--generator: the generator's cost in this tree)")
    parser.add_argument("--after-flags", default="", help="before-after: more animate flags for the after run")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="before-after and budget: output px")
    parser.add_argument("--repeats", type=int, default=2, help="before-after: runs of each, alternated")
    args = parser.parse_args()

    from PIL import Image

    from talking_head.data.demo import write_driver_video
    from talking_head.data.synthetic import render_video

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        frames, _ = render_video(7, 0, 32, 256)
        photos = []
        for i, frame in enumerate(frames):
            photos.append(str(folder / f"photo_{i}.png"))
            Image.fromarray(frame).save(photos[-1])
        base = write_driver_video(folder / "base.mp4", identity_id=3, num_frames=100, image_size=256)
        if {"before-after", "budget"} & set(args.jobs):
            long_driver = looped_driver(folder, DRIVER_SECONDS * 25, ROOT / "examples" / "driver.mp4")
            if "budget" in args.jobs:
                budget(args, long_driver)
            if "before-after" in args.jobs:
                before_after(args, folder, long_driver)
        print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads "
              f"available, {args.threads} used; torch {torch.__version__}; weights {args.weights}\n")
        rows = [("animate", n, 1, 0) for n in args.frames if "animate" in args.jobs]
        rows += [("personalize", 0, k, args.steps) for k in args.shots if "personalize" in args.jobs]
        rows += [("end to end (10 s driver)", 250, 1, args.steps)] if "end-to-end" in args.jobs else []
        if rows:
            print("| job | frames | K | steps | personalise s | total s | frames/s | peak RSS MiB | end RSS MiB |")
            print("|---|---|---|---|---|---|---|---|---|")
        for job, n, k, steps in rows:
            driver = str(looped_driver(folder, n, base)) if n else str(base)
            r = run_child("personalize" if job == "personalize" else "animate", args.weights, photos[:k], driver,
                          args.threads, steps, str(folder / "out.mp4"))
            render_s = r["total_s"] - r["personalize_s"]
            fps = f"{r['frames'] / render_s:.1f}" if r["frames"] else "-"
            print(f"| {job} | {r['frames']} | {k} | {steps} | {r['personalize_s']:.1f} | {r['total_s']:.1f} | {fps} "
                  f"| {r['peak_rss_mib']:.0f} | {r['end_rss_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
