"""The README's pictures of a checkpoint on a real photo, regenerated from the command line.

- ``docs/astronaut_driven.gif``: scikit-image's astronaut photo, fine-tuned for ``--steps`` steps (default: the app's) and
  driven by ``examples/driver.mp4`` (driver | photo | result).
- ``docs/astronaut_old_vs_new.png``: rows of driver frames; columns driver | photo | the old
  pure-synthesis checkpoint (``--old-weights``, optional) | the shipped default (the warp) | warp + G's
  painting (``--generator``), all at ``--size`` pixels.
- ``docs/open_mouth.jpg``: the driver's three most open frames, driver | photo | result at the defaults, at
  512 px: what a visitor's mouth looks like when it opens.

(The held-out synthetic grid, K = 1 / 8 / 32, baseline vs feed-forward vs fine-tuned, is ``samples.png``
from ``python -m talking_head evaluate``: the same renderings its numbers come from.)

    python benchmarks/readme_media.py --weights checkpoints --old-weights OLD   # --steps N: fine-tune first
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from talking_head.finetune import FinetuneConfig
from talking_head.hub import load_model
from talking_head.media import iter_video_frames
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import RenderConfig, caption, fit_height

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "examples" / "driver.mp4"


def pipeline(weights: str) -> TalkingHeadPipeline:
    return TalkingHeadPipeline(load_model(weights).model, weights, "cpu", "dlib")


def astronaut_photo(scratch: Path) -> Path:
    from skimage.data import astronaut

    photo = scratch / "astronaut.png"
    Image.fromarray(astronaut()).save(photo)
    return photo


def astronaut_gif(pipe: TalkingHeadPipeline, photo: Path, steps: int, out: Path, scratch: Path) -> None:
    began = time.monotonic()
    avatar = pipe.personalize([photo], steps=steps)
    result = pipe.animate(avatar, DRIVER, scratch / "astronaut_driven.mp4", RenderConfig(side_by_side=True,
                                                                                         output_size=192))
    frames = [Image.fromarray(f) for i, f in enumerate(iter_video_frames(result.path)) if i % 2 == 0]
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=80, loop=0)
    print(f"{out}: {len(frames)} frames; personalise {avatar.info['seconds']:.1f} s + render {result.seconds:.1f} s "
          f"= {time.monotonic() - began:.1f} s on {pipe.device}")


def rendered_frames(pipe: TalkingHeadPipeline, photo: Path, steps: int, size: int, path: Path, indices: list[int],
                    generator: bool = False) -> list[np.ndarray]:
    avatar = pipe.personalize([photo], steps=steps)
    pipe.animate(avatar, DRIVER, path, RenderConfig(output_size=size, generator=generator))
    return [f for i, f in enumerate(iter_video_frames(path)) if i in indices]


def old_vs_new(weights: str, old_weights: str | None, photo: Path, steps: int, size: int, out: Path,
               scratch: Path, rows: int = 4) -> None:
    driver = list(iter_video_frames(DRIVER))
    indices = np.linspace(len(driver) // 6, len(driver) - 1, rows).astype(int).tolist()
    new = pipeline(weights)
    columns: dict[str, list[np.ndarray]] = {
        "driver": [fit_height(driver[i], size) for i in indices],
        "photo": [fit_height(np.asarray(Image.open(photo).convert("RGB")), size)] * rows,
    }
    if old_weights:
        columns["old: pure synthesis"] = rendered_frames(pipeline(old_weights), photo, steps, size,
                                                         scratch / "old.mp4", indices)
    columns["new: the warp (default)"] = rendered_frames(new, photo, steps, size, scratch / "warp.mp4", indices)
    columns["warp + G (--generator)"] = rendered_frames(new, photo, steps, size, scratch / "new.mp4", indices,
                                                        generator=True)
    grid = np.concatenate([np.concatenate([caption(f, name) if r == 0 else f for r, f in enumerate(frames)], axis=0)
                           for name, frames in columns.items()], axis=1)
    Image.fromarray(grid).save(out)
    print(f"{out}: {rows} driver frames x {list(columns)}")


def open_mouths(pipe: TalkingHeadPipeline, photo: Path, out: Path, scratch: Path, size: int = 512, rows: int = 3
                ) -> None:
    """driver | photo | result at the defaults, at ``size`` px, on the driver's ``rows`` most open frames (dlib)."""
    from talking_head.landmarks.mouth import mouth_opening

    driver = list(iter_video_frames(DRIVER))
    openings = [mouth_opening(f[0].landmarks) if (f := pipe.detector.detect(frame)) else -1.0 for frame in driver]
    picks = sorted(np.argsort(openings)[::-1][:rows].tolist())
    avatar = pipe.personalize([photo], steps=0)
    result = pipe.animate(avatar, DRIVER, scratch / "open.mp4", RenderConfig(output_size=size))
    faces = [f for i, f in enumerate(iter_video_frames(result.path)) if i in picks]
    still = fit_height(np.asarray(Image.open(photo).convert("RGB")), size)
    grid = [np.concatenate([caption(fit_height(driver[i], size), f"driver #{i}"), caption(still, "photo"),
                            caption(face, "result (defaults)")], axis=1) for i, face in zip(picks, faces)]
    Image.fromarray(np.concatenate(grid, axis=0)).save(out, quality=88)  # a JPEG: 0.4 MB, not 2.5 as a PNG
    print(f"{out}: driver frames {picks}, openings {[round(float(openings[i]), 2) for i in picks]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(ROOT / "checkpoints"))
    parser.add_argument("--old-weights", default=None, help="a pure-synthesis checkpoint for the 'old' column")
    parser.add_argument("--steps", type=int, default=FinetuneConfig().steps)
    parser.add_argument("--size", type=int, default=256, help="pixels of each panel of the comparison")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    parser.add_argument("--scratch", type=Path, default=None, help="keep the mp4s here (default: a temp folder)")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = args.scratch or Path(tmp)
        scratch.mkdir(parents=True, exist_ok=True)
        photo = astronaut_photo(scratch)
        astronaut_gif(pipeline(args.weights), photo, args.steps, args.docs / "astronaut_driven.gif", scratch)
        old_vs_new(args.weights, args.old_weights, photo, args.steps, args.size,
                   args.docs / "astronaut_old_vs_new.png", scratch)
        open_mouths(pipeline(args.weights), photo, args.docs / "open_mouth.jpg", scratch)


if __name__ == "__main__":
    main()
