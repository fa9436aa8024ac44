"""Preprocessing real talking videos (VoxCeleb layout) into the dataset format: crops, landmarks in
crop pixels, one steady crop box per clip, faceless frames and clips left out, and resuming."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from skimage import data

from talking_head.data.format import read_frames, read_index, read_metadata
from talking_head.data.video import find_clips, preprocess_videos
from talking_head.landmarks import crop_face, get_detector
from talking_head.media import iter_video_frames

SHIFT = 4  # pixels the head moves right in each frame of the test clip


def write_mp4(path: Path, frames: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=25, quality=9, ffmpeg_log_level="error")
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


class CountingDetector:
    """The real dlib detector, counting calls (to show that a resumed run does no work)."""

    def __init__(self) -> None:
        self.inner, self.calls = get_detector("dlib"), 0
        self.name = self.inner.name

    def detect(self, image):
        self.calls += 1
        return self.inner.detect(image)


@pytest.fixture(scope="module")
def voxceleb(tmp_path_factory) -> Path:
    """src/id00001/talk/00001.mp4: the astronaut's head moving right, frame 5 faceless;
    src/id00002/cafe/00001.mp4: no face at all."""
    root = tmp_path_factory.mktemp("voxceleb")
    astronaut = data.astronaut()[:320, 40:360]
    faceless = cv2.resize(data.coffee(), (320, 320))
    frames = [np.roll(astronaut, SHIFT * t, axis=1) for t in range(12)]
    frames[5] = faceless
    write_mp4(root / "id00001" / "talk" / "00001.mp4", frames)
    write_mp4(root / "id00002" / "cafe" / "00001.mp4", [faceless] * 3)
    return root


def test_clips_are_found_and_decoded_as_a_stream(voxceleb):
    clips = find_clips(voxceleb)
    assert [(person, name) for person, name, _ in clips] == [("id00001", "talk_00001"), ("id00002", "cafe_00001")]
    frames = iter_video_frames(clips[0][2])
    assert next(frames).shape == (320, 320, 3)
    assert sum(1 for _ in frames) == 11
    with pytest.raises(FileNotFoundError, match="not a folder of videos"):
        find_clips(voxceleb / "missing")


def test_videos_become_a_dataset_and_a_second_run_is_a_no_op(voxceleb, tmp_path):
    detector = CountingDetector()
    records = preprocess_videos(voxceleb, tmp_path, image_size=64, detector=detector, progress=False,
                                split_of=lambda person: "heldout" if person == "id00009" else "train")
    assert [(r.person, r.video, r.split, r.num_frames) for r in records] == [("id00001", "talk_00001", "train", 11)]
    image_size, indexed = read_index(tmp_path)
    assert image_size == 64 and indexed == records
    frames, landmarks = read_frames(tmp_path, records[0])
    assert frames.shape == (11, 64, 64, 3) and frames.dtype == np.uint8
    assert landmarks.shape == (11, 68, 2) and landmarks.dtype == np.float32
    assert landmarks.min() > 0 and landmarks.max() < 64
    # One box for the whole clip: the head's motion stays visible in the crops (a box per frame would
    # pin the face in place). 4 px a frame in a 320 px photo whose crop side is about 160 px.
    centre_x = landmarks[:, :, 0].mean(axis=1)
    steps = np.diff(centre_x) / np.diff([t for t in range(12) if t != 5])
    assert np.all(steps > 0.8 * SHIFT * 64 / 180) and np.all(steps < 1.2 * SHIFT * 64 / 140)
    assert read_metadata(tmp_path / records[0].path)["source"] == "video:id00001/talk/00001.mp4"
    # Frames and landmarks agree: recover the clip's box from frame 0's landmarks and crop the
    # original photo with it; the stored frame is that crop (up to video compression).
    original = data.astronaut()[:320, 40:360]
    detected = get_detector("dlib").detect(original)[0].landmarks
    centred, stored = detected - detected.mean(axis=0), landmarks[0] - landmarks[0].mean(axis=0)
    side = 64 * np.sum(centred * stored) / np.sum(stored ** 2)
    x0, y0 = (detected - landmarks[0] * side / 64).mean(axis=0)
    expected, _ = crop_face(original, detected, 64, (x0, y0, side))
    assert np.abs(frames[0].astype(float) - expected).mean() < 4.0  # 8.6 if the box were off by 2 px

    calls, written = detector.calls, (tmp_path / records[0].path).stat().st_mtime_ns
    again = preprocess_videos(voxceleb, tmp_path, image_size=64, detector=detector, progress=False)
    assert again == records
    assert (tmp_path / records[0].path).stat().st_mtime_ns == written
    assert detector.calls - calls == 3  # only the faceless clip, which left no file, is looked at again


def test_every_and_max_frames_thin_out_a_clip(voxceleb, tmp_path):
    records = preprocess_videos(voxceleb, tmp_path, image_size=32, every=2, max_frames=4, progress=False,
                                detector=get_detector("dlib"))
    frames, landmarks = read_frames(tmp_path, records[0])
    assert frames.shape == (4, 32, 32, 3)  # frames 0, 2, 4, 6 (frame 5, the faceless one, is not used)
    steps = np.diff(landmarks[:, :, 0].mean(axis=1))
    assert np.allclose(steps, steps[0], atol=0.5) and steps[0] > 0  # evenly spaced frames


def test_a_phone_clip_stored_sideways_with_a_rotation_tag_is_preprocessed_upright(tmp_path):
    """Decoded as driving videos are (``media.iter_video_frames``): the display matrix turns the frames
    upright, where dlib finds the face; frames read as stored would show it lying on its side."""
    upright = data.astronaut()[:320, 60:300]  # 320 x 240: not square, so a swapped size would show too
    sideways = tmp_path / "sideways.mp4"
    write_mp4(sideways, [np.rot90(upright, k=-1)] * 3)  # turned clockwise, as a phone's sensor stores it
    clip = tmp_path / "src" / "id00001" / "phone" / "00001.mp4"
    clip.parent.mkdir(parents=True)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-display_rotation", "90",
                    "-i", str(sideways), "-c", "copy", str(clip)], check=True)
    records = preprocess_videos(tmp_path / "src", tmp_path / "dataset", image_size=32, progress=False,
                                detector=get_detector("dlib"))
    assert [(r.video, r.num_frames) for r in records] == [("phone_00001", 3)]
    _, landmarks = read_frames(tmp_path / "dataset", records[0])
    assert (landmarks[:, 8, 1] > landmarks[:, 27, 1]).all()  # the chin below the top of the nose: upright


def test_bad_options_and_a_folder_of_another_size_are_refused(voxceleb, tmp_path):
    with pytest.raises(ValueError, match="every >= 1"):
        preprocess_videos(voxceleb, tmp_path, every=0)
    preprocess_videos(voxceleb, tmp_path, image_size=32, max_frames=2, progress=False, detector=get_detector("dlib"))
    with pytest.raises(ValueError, match="32-pixel frames"):
        preprocess_videos(voxceleb, tmp_path, image_size=64)
