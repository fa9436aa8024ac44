"""The README's pictures of a checkpoint, regenerated from the command line.

- ``docs/kshot_grid.png``: a held-out synthetic identity, K = 1 / 8 / 32, feed-forward vs fine-tuned,
  on target frames none of the shots show (first row: the real frames).
- ``docs/astronaut_driven.gif`` (+ the mp4 next to it in ``--scratch``): scikit-image's astronaut
  photo, fine-tuned for ``--steps`` steps, driven by ``examples/driver.mp4``.

    python benchmarks/readme_media.py --weights checkpoints --steps 40
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from talking_head.data.episodes import to_network
from talking_head.data.synthetic import SyntheticConfig, identity_split, render_video
from talking_head.finetune import FinetuneConfig, personalize
from talking_head.hub import TalkingHeadModel, load_model
from talking_head.media import iter_video_frames
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import RenderConfig, label, to_uint8

ROOT = Path(__file__).resolve().parents[1]


def first_heldout_identity(start: int = 1000) -> int:
    """A held-out identity past every training set this project renders (they use ids below 1000)."""
    config = SyntheticConfig()
    return next(i for i in range(start, start + 1000) if identity_split(i, config) == "heldout")


def kshot_grid(model: TalkingHeadModel, steps: int, out: Path, ks: tuple[int, ...] = (1, 8, 32)) -> None:
    identity = first_heldout_identity()
    size = model.config.image_size
    frames, landmarks = render_video(identity, 0, 64, size)
    x, y = to_network(frames, landmarks, size)
    targets = [40, 47, 54, 61]  # second half of the clip: no shot shows these poses
    rows = [[label(f, "real") if i == 0 else f for i, f in enumerate(frames[targets])]]
    for k in ks:
        shots = np.linspace(0, 31, k).astype(int).tolist()
        for s in (0, steps):
            generator = personalize(model, x[shots], y[shots], FinetuneConfig(steps=s, device="cpu"))
            images = to_uint8(generator.generate(y[targets]))
            rows.append([label(images[0], f"K={k} {'fine-tuned' if s else 'feed-fwd'}"), *images[1:]])
    grid = np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
    Image.fromarray(grid).save(out)
    print(f"{out}: identity {identity}, rows real + K in {ks} x (feed-forward, {steps} steps)")


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
    kshot_grid(model, args.steps, args.docs / "kshot_grid.png")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = args.scratch or Path(tmp)
        scratch.mkdir(parents=True, exist_ok=True)
        astronaut_gif(TalkingHeadPipeline(model, args.weights, "cpu", "dlib"), args.steps,
                      args.docs / "astronaut_driven.gif", scratch)


if __name__ == "__main__":
    main()
