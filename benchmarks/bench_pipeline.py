"""End-to-end speed and memory of the pipeline: photos + driving video -> mp4.

Each measurement runs in a fresh child process so its peak resident memory (VmHWM) is its own:

- animate N frames (default 300 and 3000) with one avatar: peak RSS must not grow with N (streaming);
- personalise on K photos (default 1 and 32) for --steps steps: time and peak RSS;
- end to end: one photo + a 10 s driver -> mp4, fine-tuned for --steps steps.

"peak RSS" is the process's high-water mark, "end RSS" its resident memory when the job is done: a
stream that kept frames would show both growing with N.

    python benchmarks/bench_pipeline.py [--weights checkpoints] [--frames 300 3000] [--shots 1 32] [--steps 40]
                                        [--jobs animate personalize end-to-end]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

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


JOBS = ("animate", "personalize", "end-to-end")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="checkpoints", help="checkpoint folder or repo id")
    parser.add_argument("--frames", type=int, nargs="+", default=[300, 3000])
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--steps", type=int, default=FinetuneConfig().steps)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--jobs", nargs="+", choices=JOBS, default=list(JOBS), help="which measurements to run")
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
        print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads "
              f"available, {args.threads} used; torch {torch.__version__}; weights {args.weights}\n")
        print("| job | frames | K | steps | personalise s | total s | frames/s | peak RSS MiB | end RSS MiB |")
        print("|---|---|---|---|---|---|---|---|---|")
        rows = [("animate", n, 1, 0) for n in args.frames if "animate" in args.jobs]
        rows += [("personalize", 0, k, args.steps) for k in args.shots if "personalize" in args.jobs]
        rows += [("end to end (10 s driver)", 250, 1, args.steps)] if "end-to-end" in args.jobs else []
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
