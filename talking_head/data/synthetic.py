"""A procedural synthetic talking-head video dataset, the meta-training data this project can have.

No talking-head dataset (VoxCeleb) can be downloaded here, so the project renders one. Each identity
is a seeded 3D head (``synthetic_face``: face proportions deformed from the mean 68-point layout, skin,
eye, hair, lip colours, hair style, skin texture, background); each video moves it smoothly (yaw,
pitch, roll, mouth, smile, brows, blinks) and ``synthetic_render`` ray-casts it under a light fixed in
the world. The 68 landmarks (iBUG order) are the projected 3D layout, exact by construction.

What a warp of one shot cannot fake is present on purpose, so a model has something to learn: the
mouth's inside (dark cavity, teeth, tongue) appears as it opens, lids cover the eyes in blinks, the
far side of the head turns into view, and shading follows the pose.

Everything is a pure function of (seed, identity, video): the same arguments give the same frames.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from talking_head.data.format import VideoRecord, video_path, write_index, write_video
from talking_head.data.synthetic_face import (Identity, Motion, expression_layout, make_identity, make_motion,
                                              rotation_matrices)
from talking_head.data.synthetic_render import FACE_CENTER_DROP, FACE_FRACTION, make_camera, render

__all__ = ["SyntheticConfig", "identity_split", "identities_of", "make_person", "video_motion", "render_video", "generate_dataset",
           "FACE_FRACTION", "FACE_CENTER_DROP"]


@dataclass(frozen=True)
class SyntheticConfig:
    """What to render: frame size, clip length, the master seed and the share of held-out people."""
    image_size: int = 128
    frames_per_video: int = 32
    seed: int = 0
    heldout_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {self.image_size}")
        if self.frames_per_video < 1:
            raise ValueError(f"frames_per_video must be positive, got {self.frames_per_video}")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be in [0, 1), got {self.heldout_fraction}")


def _rng(*keys: int) -> np.random.Generator:
    """An independent random stream per key tuple, so identities and videos never share draws."""
    return np.random.default_rng(np.random.SeedSequence([abs(int(k)) for k in keys]))


def identity_split(identity_id: int, config: SyntheticConfig) -> str:
    """"train" or "heldout", fixed by (seed, identity) alone: adding identities never moves anyone."""
    return "heldout" if _rng(config.seed, identity_id, 7).random() < config.heldout_fraction else "train"


def make_person(identity_id: int, seed: int = 0) -> Identity:
    """The identity's shape, colours and hair style (shared by all of its videos)."""
    if identity_id < 0:
        raise ValueError(f"identity_id must be non-negative, got {identity_id}")
    return make_identity(_rng(seed, identity_id, 1))


def video_motion(identity_id: int, video_id: int, num_frames: int, seed: int = 0) -> Motion:
    """The pose/expression tracks of one clip (what ``render_video`` animates), e.g. to pick frames."""
    if video_id < 0 or num_frames < 1:
        raise ValueError(f"need video_id >= 0 and num_frames >= 1, got {video_id}, {num_frames}")
    return make_motion(_rng(seed, identity_id, 2, video_id), num_frames)


def render_video(identity_id: int, video_id: int, num_frames: int, image_size: int, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Render one clip: frames (T, H, W, 3) uint8 RGB and landmarks (T, 68, 2) float32 pixel (x, y)."""
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")
    identity = make_person(identity_id, seed)
    motion = video_motion(identity_id, video_id, num_frames, seed)
    points = expression_layout(identity, motion)
    camera = make_camera(identity, motion, rotation_matrices(motion.yaw, motion.pitch, motion.roll), image_size)
    return render(identity, motion, points, camera, image_size)


def _write_one(root: str | Path, identity_id: int, video_id: int, config: SyntheticConfig) -> None:
    frames, landmarks = render_video(identity_id, video_id, config.frames_per_video, config.image_size, config.seed)
    write_video(root, f"syn{identity_id:05d}", f"v{video_id:02d}", frames, landmarks,
                split=identity_split(identity_id, config), source="synthetic")


def generate_dataset(root: str | Path, num_identities: int, videos_per_identity: int, config: SyntheticConfig,
                     progress: bool = True, workers: int = 1) -> list[VideoRecord]:
    """Render ``num_identities x videos_per_identity`` clips into ``root`` (the format.py layout).

    Resumable: clips whose file already exists are skipped (files are written atomically), and the
    index is rewritten at the end, so an interrupted run can simply be started again. ``workers`` > 1
    renders in that many processes (rendering itself is single-threaded; see synthetic_render).
    """
    if num_identities < 1 or videos_per_identity < 1:
        raise ValueError(f"need at least one identity and one video, got {num_identities}, {videos_per_identity}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    jobs = [(i, v) for i in range(num_identities) for v in range(videos_per_identity)]
    todo = [(i, v) for i, v in jobs if not video_path(root, f"syn{i:05d}", f"v{v:02d}").exists()]
    bar = tqdm(total=len(todo), desc="synthetic videos", unit="video", disable=not progress)
    if workers == 1:
        for identity_id, video_id in todo:
            _write_one(root, identity_id, video_id, config)
            bar.update()
    else:
        # "spawn", not fork: a forked child inherits torch's thread pools in an undefined state and hung.
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            for future in as_completed([pool.submit(_write_one, root, i, v, config) for i, v in todo]):
                future.result()
                bar.update()
    bar.close()
    return write_index(root, config.image_size)


def identities_of(split: str, count: int, config: SyntheticConfig = SyntheticConfig()) -> list[int]:
    """The first ``count`` identities of ``split`` ("train" or "heldout"), in order."""
    found, identity = [], 0
    while len(found) < count:
        if identity_split(identity, config) == split:
            found.append(identity)
        identity += 1
    return found
