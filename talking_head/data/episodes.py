"""Meta-learning episodes: K shots + one target frame from the same video, as network-ready tensors.

Sampling is a pure function of (seed, step), so a resumed run sees exactly the episodes the
uninterrupted run would have seen. The last ``holdout_frames`` frames of every video are never used
for training: they are the held-out frames the training loop reports reconstruction error on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from talking_head.data.format import VideoRecord, read_frames, read_index
from talking_head.tensors import to_network


@dataclass
class Episode:
    """A batch of episodes. Shapes: shots (B, K, 3, H, W), targets (B, 3, H, W), video_index (B,).

    ``*_landmarks`` are the drawn landmark images, ``*_points`` the (68, 2) landmarks in model pixels
    (what the texture path warps with).
    """

    shot_frames: torch.Tensor
    shot_landmarks: torch.Tensor
    target_frames: torch.Tensor
    target_landmarks: torch.Tensor
    video_index: torch.Tensor
    shot_points: torch.Tensor
    target_points: torch.Tensor

    def to(self, device: torch.device | str) -> "Episode":
        return Episode(*(getattr(self, f).to(device, non_blocking=True) for f in self.__dataclass_fields__))


class EpisodeSampler:
    """Draws episodes from the videos of one split of a dataset folder."""

    def __init__(self, root: str | Path, split: str, k_shots: int, image_size: int, holdout_frames: int = 4,
                 seed: int = 0) -> None:
        self.root, self.k_shots, self.image_size, self.seed = Path(root), k_shots, image_size, seed
        _, records = read_index(root)
        self.videos: list[VideoRecord] = [r for r in records if r.split == split]
        self.holdout_frames = holdout_frames
        usable = [r for r in self.videos if r.num_frames - holdout_frames >= k_shots + 1]
        if not usable:
            raise ValueError(f"{root}: no {split!r} video has the {k_shots + 1 + holdout_frames} frames an episode "
                             f"with K={k_shots} and {holdout_frames} held-out frames needs")
        self.videos = usable

    @property
    def num_videos(self) -> int:
        return len(self.videos)

    def _load(self, video: int, frame_indices: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        frames, landmarks = read_frames(self.root, self.videos[video], frame_indices)
        points = torch.from_numpy(np.asarray(landmarks, np.float32) * (self.image_size / frames.shape[2]))
        return (*to_network(frames, landmarks, self.image_size), points)

    def sample(self, batch_size: int, step: int) -> Episode:
        """Training episodes for ``step``: shots and target drawn from the non-held-out frames."""
        rng = np.random.default_rng([self.seed, step])
        videos = rng.integers(0, self.num_videos, size=batch_size)
        parts = []
        for v in videos:
            available = self.videos[v].num_frames - self.holdout_frames
            chosen = rng.choice(available, size=self.k_shots + 1, replace=False).tolist()
            parts.append(self._load(int(v), chosen))
        return self._stack(parts, torch.as_tensor(videos))

    def heldout(self, num_videos: int) -> Episode:
        """Evaluation episodes: shots from a video's training frames, target its first held-out frame."""
        parts, chosen_videos = [], np.linspace(0, self.num_videos - 1, min(num_videos, self.num_videos)).astype(int)
        for v in chosen_videos:
            available = self.videos[v].num_frames - self.holdout_frames
            shots = np.linspace(0, available - 1, self.k_shots).astype(int).tolist()
            parts.append(self._load(int(v), [*shots, available]))
        return self._stack(parts, torch.as_tensor(chosen_videos))

    def _stack(self, parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], videos: torch.Tensor) -> Episode:
        frames, drawings, points = (torch.stack(column) for column in zip(*parts))
        return Episode(frames[:, :-1], drawings[:, :-1], frames[:, -1], drawings[:, -1], videos.long(),
                       points[:, :-1], points[:, -1])
