"""The on-disk format of a talking-head dataset.

A dataset is a folder::

    root/
      index.json                     {"format": "talking-head-v1", "image_size": 128, "videos": [...]}
      videos/<person>/<video>.safetensors

Each video file holds two tensors, ``frames`` (T, H, W, 3) uint8 RGB and ``landmarks`` (T, 68, 2)
float32 pixel coordinates (x, y) in the frame, plus string metadata (person, video, split, source).
Safetensors rather than ``.npz``/pickles: nothing in a dataset can execute code, and single frames
can be read without loading the whole clip (``safe_open(...).get_slice``).

Files are written atomically (temporary name, then rename), so an interrupted writer leaves either a
complete video or nothing, and a resumed writer can skip whatever exists.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

FORMAT_NAME = "talking-head-v1"
INDEX_FILE = "index.json"


@dataclass(frozen=True)
class VideoRecord:
    person: str
    video: str
    split: str
    num_frames: int
    path: str  # relative to the dataset root


def video_path(root: str | Path, person: str, video: str) -> Path:
    return Path(root) / "videos" / person / f"{video}.safetensors"


def write_video(root: str | Path, person: str, video: str, frames: np.ndarray, landmarks: np.ndarray,
                split: str = "train", source: str = "unknown") -> VideoRecord:
    """Write one video atomically; returns its index record."""
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    landmarks = np.ascontiguousarray(landmarks, dtype=np.float32)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape}")
    if landmarks.shape != (frames.shape[0], 68, 2):
        raise ValueError(f"landmarks must be ({frames.shape[0]}, 68, 2), got {landmarks.shape}")
    path = video_path(root, person, video)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".safetensors.partial")
    save_file({"frames": frames, "landmarks": landmarks}, str(tmp),
              metadata={"person": person, "video": video, "split": split, "source": source,
                        "format": FORMAT_NAME})
    os.replace(tmp, path)
    return VideoRecord(person, video, split, int(frames.shape[0]), str(path.relative_to(root)))


def read_metadata(path: str | Path) -> dict[str, str]:
    with safe_open(str(path), framework="numpy") as f:
        return dict(f.metadata() or {})


def read_frames(root: str | Path, record: VideoRecord, indices: list[int] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Read (frames, landmarks) of a video, all of them or only ``indices``, without loading the rest."""
    with safe_open(str(Path(root) / record.path), framework="numpy") as f:
        if indices is None:
            return f.get_tensor("frames"), f.get_tensor("landmarks")
        frames_slice, landmarks_slice = f.get_slice("frames"), f.get_slice("landmarks")
        frames = np.stack([frames_slice[i:i + 1][0] for i in indices])
        landmarks = np.stack([landmarks_slice[i:i + 1][0] for i in indices])
        return frames, landmarks


def write_index(root: str | Path, image_size: int) -> list[VideoRecord]:
    """Scan ``root/videos`` and (re)write ``index.json``; sorted so the order is deterministic."""
    root = Path(root)
    records = []
    for path in sorted((root / "videos").glob("*/*.safetensors")):
        meta = read_metadata(path)
        with safe_open(str(path), framework="numpy") as f:
            num_frames = f.get_slice("frames").get_shape()[0]
        records.append(VideoRecord(meta.get("person", path.parent.name), meta.get("video", path.stem),
                                   meta.get("split", "train"), int(num_frames), str(path.relative_to(root))))
    index = {"format": FORMAT_NAME, "image_size": image_size, "videos": [asdict(r) for r in records]}
    tmp = root / (INDEX_FILE + ".partial")
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, root / INDEX_FILE)
    return records


def read_index(root: str | Path) -> tuple[int, list[VideoRecord]]:
    """Return (image_size, records) of a dataset folder, with a clear error if it is not one."""
    path = Path(root) / INDEX_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a talking-head dataset folder "
                                f"(make one with `python -m talking_head synthesize` or `preprocess`)")
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: unknown dataset format {index.get('format')!r}, expected {FORMAT_NAME!r}")
    return int(index["image_size"]), [VideoRecord(**v) for v in index["videos"]]
