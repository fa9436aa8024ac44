"""Regenerate the app's example files (run from anywhere: ``python examples/make_examples.py``).

Every file here is either public domain or made by this project, so the Space can ship them:

- ``astronaut.jpg``: ``skimage.data.astronaut()``, NASA's portrait of Eileen Collins (public domain).
- ``person_1.jpg`` .. ``person_3.jpg``: three frames of one synthetic person (identity 18, held out of
  the synthetic training split), in different poses, so K = 3 has something to average.
- ``driver.mp4``: a synthetic talking head (identity 33, also held out), 4 s at 25 fps, 256 px, with a
  speech-like sound track, rendered by ``talking_head.data.demo.write_driver_video``.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from skimage import data

from talking_head.data.demo import write_driver_video
from talking_head.data.synthetic import render_video

EXAMPLES = Path(__file__).resolve().parent
#: Both "heldout" under the default SyntheticConfig split; dlib finds the driver's face in all its frames.
PERSON_ID, DRIVER_ID = 18, 33
PHOTO_SIZE, CLIP_FRAMES = 256, 48
DRIVER_SECONDS, FPS = 4, 25


def main() -> None:
    Image.fromarray(data.astronaut()).save(EXAMPLES / "astronaut.jpg", quality=92)
    frames, _ = render_video(PERSON_ID, 0, CLIP_FRAMES, PHOTO_SIZE)
    for number, index in enumerate((0, CLIP_FRAMES // 2, CLIP_FRAMES - 1), start=1):
        Image.fromarray(frames[index]).save(EXAMPLES / f"person_{number}.jpg", quality=92)
    write_driver_video(EXAMPLES / "driver.mp4", identity_id=DRIVER_ID, num_frames=DRIVER_SECONDS * FPS, fps=FPS,
                       image_size=PHOTO_SIZE)
    for path in sorted(EXAMPLES.glob("*.*")):
        print(f"{path.name:16s} {path.stat().st_size / 1024:7.1f} KiB")


if __name__ == "__main__":
    main()
