"""Real talking videos in the VoxCeleb layout -> the dataset format of ``format.py``.

Input: ``src/<person>/<video>/<clip>.mp4`` (VoxCeleb1/2's layout: a person, a YouTube video, its
clips). Output: one ``videos/<person>/<video>_<clip>.safetensors`` per clip, holding face crops made
with the system's crop convention (``landmarks.align.crop_face``) and their landmarks in crop pixels.

Each clip is cropped with *one* box, placed from the median of its landmarks: a box per frame would
follow the detector's jitter and shake the whole picture, and it would hide the head's motion, which
is what the model must learn to follow. Clips are decoded twice as streams (landmarks first, then the
crops), so a long or high-resolution clip never sits in memory whole, by the decoder driving videos go
through (``media.iter_video_frames``): a phone clip filmed upright is upright and a variable-frame-rate
one evenly spaced in the dataset, as the model will see such videos when they drive it.

Resumable: a clip whose output file exists is skipped, and files are written atomically.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from talking_head.data.format import INDEX_FILE, VideoRecord, read_index, video_path, write_index, write_video
from talking_head.landmarks.align import crop_box, crop_face
from talking_head.landmarks.detect import LandmarkDetector, get_detector
from talking_head.media import VideoInfo, iter_video_frames, probe_video

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def find_clips(src: str | Path) -> list[tuple[str, str, Path]]:
    """``(person, video_clip_name, path)`` of every clip under ``src/<person>/<video>/``, sorted."""
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"{src} is not a folder of videos (expected <person>/<video>/<clip>.mp4)")
    clips = sorted(p for p in src.glob("*/*/*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    return [(p.parent.parent.name, f"{p.parent.name}_{p.stem}", p) for p in clips]


def _selected(path: Path, info: VideoInfo, every: int) -> Iterator[tuple[int, np.ndarray]]:
    for index, frame in enumerate(iter_video_frames(path, decoded=info)):
        if index % every == 0:
            yield index, frame


def preprocess_clip(path: str | Path, image_size: int, detector: LandmarkDetector, every: int = 1,
                    max_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Crops (T, S, S, 3) uint8 and landmarks (T, 68, 2) float32 in crop pixels of one clip.

    Every ``every``-th frame is used, at most ``max_frames`` of those that show a face; frames with
    no face are skipped. Returns empty arrays if no frame shows a face.
    """
    path, info = Path(path), probe_video(path)  # probed once for both passes
    kept: dict[int, np.ndarray] = {}
    for index, frame in _selected(path, info, every):
        faces = detector.detect(frame)
        if faces:
            kept[index] = faces[0].landmarks
            if max_frames is not None and len(kept) >= max_frames:
                break
    if not kept:
        return np.zeros((0, image_size, image_size, 3), np.uint8), np.zeros((0, 68, 2), np.float32)
    box = crop_box(np.median(np.stack(list(kept.values())), axis=0))
    crops, landmarks, last = [], [], max(kept)
    for index, frame in _selected(path, info, every):
        if index in kept:
            crop, points = crop_face(frame, kept[index], image_size, box)
            crops.append(crop)
            landmarks.append(points)
        if index >= last:
            break
    return np.stack(crops), np.stack(landmarks)


def preprocess_videos(src: str | Path, dst: str | Path, image_size: int = 128, every: int = 1,
                      max_frames: int | None = None, split_of: Callable[[str], str] | None = None,
                      detector: LandmarkDetector | None = None, min_frames: int = 2, progress: bool = True
                      ) -> list[VideoRecord]:
    """Preprocess every clip under ``src`` into the dataset folder ``dst``; returns its index records.

    ``split_of(person)`` names each person's split ("train" for everyone by default). Clips with
    fewer than ``min_frames`` face frames are left out (an episode needs a target and a shot).
    Running again only processes clips that are not in ``dst`` yet (left-out clips are tried again).
    """
    if image_size < 16 or every < 1 or min_frames < 1 or (max_frames is not None and max_frames < min_frames):
        raise ValueError(f"need image_size >= 16, every >= 1, 1 <= min_frames <= max_frames; got image_size="
                         f"{image_size}, every={every}, min_frames={min_frames}, max_frames={max_frames}")
    if (Path(dst) / INDEX_FILE).is_file() and (existing := read_index(dst)[0]) != image_size:
        raise ValueError(f"{dst} holds a dataset of {existing}-pixel frames; "
                         f"preprocess into another folder to get {image_size}-pixel frames")
    clips = find_clips(src)
    Path(dst).mkdir(parents=True, exist_ok=True)
    todo = [(person, name, path) for person, name, path in clips if not video_path(dst, person, name).exists()]
    log.info("%d clips under %s, %d already in %s", len(clips), src, len(clips) - len(todo), dst)
    if todo and detector is None:
        detector = get_detector()
    for person, name, path in tqdm(todo, desc="preprocessing clips", unit="clip", disable=not progress):
        frames, landmarks = preprocess_clip(path, image_size, detector, every, max_frames)
        if len(frames) < min_frames:
            log.warning("%s: skipped, a face was found in only %d frame(s)", path, len(frames))
            continue
        write_video(dst, person, name, frames, landmarks, split=split_of(person) if split_of else "train",
                    source=f"video:{path.relative_to(src).as_posix()}")
    return write_index(dst, image_size)


def person_split(person: str, heldout_fraction: float) -> str:
    """"heldout" or "train" for a person, from a hash of the name: stable however many people there are."""
    draw = int.from_bytes(hashlib.sha256(person.encode()).digest()[:8], "big") / 2 ** 64
    return "heldout" if draw < heldout_fraction else "train"
