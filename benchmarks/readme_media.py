"""The README's picture of a checkpoint on a real photo, regenerated from the command line.

``docs/astronaut_driven.gif`` (+ the mp4 next to it in ``--scratch``): scikit-image's astronaut photo,
fine-tuned for ``--steps`` steps, driven by ``examples/driver.mp4``. (The held-out synthetic grid,
K = 1 / 8 / 32, baseline vs feed-forward vs fine-tuned, is ``samples.png`` from ``python -m
talking_head evaluate``: the same renderings its numbers come from.)

    python benchmarks/readme_media.py --weights checkpoints --steps 40
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from talking_head.hub import load_model
from talking_head.media import iter_video_frames
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import RenderConfig

ROOT = Path(__file__).resolve().parents[1]


def astronaut_gif(pipe: TalkingHeadPipeline, steps: int, out: Path, scratch: Path) -> None:
    from skimage.data import astronaut

    photo = scratch / "astronaut.png"
    Image.fromarray(astronaut()).save(photo)
    began = time.monotonic()
    avatar = pipe.personalize([photo], steps=steps)
    result = pipe.animate(avatar, ROOT / "examples" / "driver.mp4", scratch / "astronaut_driven.mp4",
                          RenderConfig(side_by_side=True, output_size=128))
    frames = [Image.fromarray(f) for i, f in enumerate(iter_video_frames(result.path)) if i % 2 == 0]
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=80, loop=0)
    print(f"{out}: {len(frames)} frames; personalise {avatar.info['seconds']:.1f} s + render {result.seconds:.1f} s "
          f"= {time.monotonic() - began:.1f} s on {pipe.device}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(ROOT / "checkpoints"))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    parser.add_argument("--scratch", type=Path, default=None, help="keep the mp4s here (default: a temp folder)")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = load_model(args.weights).model
    with tempfile.TemporaryDirectory() as tmp:
        scratch = args.scratch or Path(tmp)
        scratch.mkdir(parents=True, exist_ok=True)
        astronaut_gif(TalkingHeadPipeline(model, args.weights, "cpu", "dlib"), args.steps,
                      args.docs / "astronaut_driven.gif", scratch)


if __name__ == "__main__":
    main()
