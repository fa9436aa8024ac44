"""Tests of the synthetic talking-head dataset: deterministic, exact landmarks, varied people, smooth
motion, the framing contract, a fixed split, and resumable writing in the shared on-disk format."""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from talking_head.data.format import read_frames, read_index
from talking_head.data.synthetic import (FACE_CENTER_DROP, FACE_FRACTION, SyntheticConfig, generate_dataset,
                                         identity_split, make_person, render_video, video_motion)
from talking_head.data.synthetic_face import expression_layout, rotation_matrices
from talking_head.data.synthetic_render import make_camera, project, render
from talking_head.landmarks.align import crop_box
from talking_head.landmarks.mouth import mouth_width


def _luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _pixel(frame: np.ndarray, xy: np.ndarray) -> np.ndarray:
    x, y = np.round(xy).astype(int)
    return frame[y, x].astype(np.float64)


def _polygon_mask(points: np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


@pytest.fixture(scope="module")
def clip() -> tuple[np.ndarray, np.ndarray]:
    return render_video(3, 0, 32, 128, seed=0)


def test_same_arguments_give_identical_frames_and_other_identities_differ():
    frames_a, lm_a = render_video(5, 1, 4, 64, seed=2)
    frames_b, lm_b = render_video(5, 1, 4, 64, seed=2)
    assert frames_a.shape == (4, 64, 64, 3) and frames_a.dtype == np.uint8
    assert lm_a.shape == (4, 68, 2) and lm_a.dtype == np.float32
    np.testing.assert_array_equal(frames_a, frames_b)
    np.testing.assert_array_equal(lm_a, lm_b)
    other, _ = render_video(6, 1, 4, 64, seed=2)
    reseeded, _ = render_video(5, 1, 4, 64, seed=3)
    assert np.abs(frames_a.astype(int) - other).mean() > 10
    assert np.abs(frames_a.astype(int) - reseeded).mean() > 10


def test_videos_of_one_identity_share_the_person_but_not_the_motion():
    def face_chroma(identity: int, video: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean chromaticity inside the jaw hull (lighting changes per video; skin colour must not)."""
        frames, lms = render_video(identity, video, 6, 64)
        colour = np.mean([frames[i][_polygon_mask(lms[i, :17], 64)].mean(0) for i in range(6)], 0)
        return colour / colour.sum(), lms

    first, lm_first = face_chroma(8, 0)
    second, lm_second = face_chroma(8, 1)
    assert np.abs(lm_first - lm_second).mean() > 1.0          # different motion
    same = np.abs(first - second).sum()
    strangers = [np.abs(first - face_chroma(i, 0)[0]).sum() for i in range(9, 15)]
    assert same < 0.5 * np.median(strangers)


def test_face_edge_runs_along_the_jaw_landmarks(clip):
    frames, lms = clip
    across, along = [], []
    for frame, lm in zip(frames, lms):
        centre = lm[27:36].mean(0)
        for i in range(5, 12):   # the chin and lower jaw: skin above, neck in shadow below
            normal = lm[i] - centre
            normal /= np.linalg.norm(normal)
            inside, further_in, outside = lm[i] - 2.5 * normal, lm[i] - 5 * normal, lm[i] + 2.5 * normal
            across.append(np.abs(_pixel(frame, inside) - _pixel(frame, outside)).sum())
            along.append(np.abs(_pixel(frame, inside) - _pixel(frame, further_in)).sum())
    assert np.median(across) > 2 * np.median(along) + 10


def test_eyes_lips_and_mouth_are_painted_where_the_landmarks_say(clip):
    frames, lms = clip
    motion = video_motion(3, 0, 32)
    person = make_person(3)
    open_eyes = [i for i in range(32) if motion.blink[i] < 0.1]
    for i in open_eyes:
        frame, lm = frames[i], lms[i]
        cheek = _luma(_pixel(frame, 0.5 * (lm[2] + lm[31])))
        for eye in (lm[36:42], lm[42:48]):
            mask = _polygon_mask(eye, 128)
            inside = _luma(frame[mask])
            assert inside.min() < 0.45 * cheek          # pupil / iris
            assert inside.max() > 0.8 * cheek           # sclera
    # Lip colour between the outer and inner lip lines: redder than the person's skin.
    skin_ratio = person.skin[0] / person.skin[1]
    lip_ratios = []
    for frame, lm in zip(frames, lms):
        for outer, inner in ((51, 62), (57, 66)):
            r, g, _ = _pixel(frame, 0.5 * (lm[outer] + lm[inner])) + 1
            lip_ratios.append(r / g)
    assert np.median(lip_ratios) > 1.1 * skin_ratio
    # An open mouth shows a dark cavity inside the inner-lip polygon; a closed one has no inside.
    wide = [i for i in range(32) if motion.mouth[i] > 0.6]
    assert wide, "the clip should open its mouth wide at least once"
    for i in wide:
        mask = _polygon_mask(lms[i, 60:68], 128)
        assert mask.sum() > 10
        assert _luma(frames[i][mask]).min() < 0.35 * _luma(_pixel(frames[i], lms[i, 8] - [0, 4]))


def test_blinks_hide_the_eyes():
    motion = video_motion(11, 2, 32)
    frames, lms = render_video(11, 2, 32, 128)
    shut, opened = int(np.argmax(motion.blink)), int(np.argmin(motion.blink))
    assert motion.blink[shut] > 0.9 and motion.blink[opened] < 0.05

    def eye_vs_lid_skin(i: int) -> float:
        """How unlike the surrounding skin the open-eye area is (sclera, iris, pupil vs. a closed lid)."""
        gaps = []
        for eye in (slice(36, 42), slice(42, 48)):
            outline = lms[opened, eye] - lms[opened, eye].mean(0) + lms[i, eye].mean(0)
            inside = _polygon_mask(outline, 128).astype(np.uint8)
            ring = (cv2.dilate(inside, np.ones((5, 5), np.uint8)) - inside).astype(bool)
            skin = np.median(frames[i][ring].astype(float), 0)
            gaps.append(np.abs(frames[i][inside.astype(bool)] - skin).sum(-1).mean())
        return float(np.mean(gaps))
    assert eye_vs_lid_skin(shut) < 0.75 * eye_vs_lid_skin(opened)
    heights = np.linalg.norm(lms[:, [37, 38, 43, 44]] - lms[:, [41, 40, 47, 46]], axis=-1).mean(1)
    assert heights[shut] < 0.2 * heights[opened]


def test_identities_vary_in_shape_colour_and_background():
    faces, backgrounds, shapes = [], [], []
    for identity in range(20):
        frames, lms = render_video(identity, 0, 1, 64)
        frame, lm = frames[0], lms[0]
        face = _polygon_mask(lm[:17], 64)
        faces.append(frame[face].mean(0))
        backgrounds.append(np.concatenate([frame[:8, :8].mean((0, 1)), frame[:8, -8:].mean((0, 1))]))
        person = make_person(identity)
        layout = person.layout[:, :2] - person.layout[:, :2].mean(0)
        shapes.append(layout / np.linalg.norm(layout))
    faces, backgrounds, shapes = map(np.array, (faces, backgrounds, shapes))
    assert faces.std(0).mean() > 12               # light to dark skin across people
    for a, b in itertools.combinations(range(20), 2):
        colour_gap = np.abs(faces[a] - faces[b]).sum() + np.abs(backgrounds[a] - backgrounds[b]).sum()
        assert colour_gap > 8, (a, b)
        assert np.abs(shapes[a] - shapes[b]).max() > 0.002, (a, b)


def test_motion_is_smooth_and_spans_the_pose_range():
    frames, lms = render_video(2, 4, 32, 64)
    stable = np.r_[0:36, 48:68]   # everything but the eyes, whose blinks are meant to be fast
    step = np.linalg.norm(np.diff(lms[:, stable], axis=0), axis=-1)
    accel = np.linalg.norm(np.diff(lms[:, stable], n=2, axis=0), axis=-1)
    assert step.max() < 0.1 * 64
    assert accel.mean() < 0.6 * step.mean()
    frame_change = np.abs(np.diff(frames.astype(int), axis=0)).mean((1, 2, 3))
    assert frame_change.max() < 25
    yaws, pitches, rolls = (np.degrees(np.concatenate([getattr(video_motion(i, v, 32), k) for i in range(8)
                                                       for v in range(2)])) for k in ("yaw", "pitch", "roll"))
    assert yaws.max() > 25 and yaws.min() < -25 and np.abs(yaws).max() < 35
    assert pitches.max() > 10 and pitches.min() < -10 and rolls.max() > 7 and rolls.min() < -7
    mouths = np.concatenate([video_motion(i, 0, 32).mouth for i in range(8)])
    assert mouths.min() == 0.0 and mouths.max() > 0.9


def test_shading_follows_the_pose_under_a_light_fixed_in_the_world():
    """The same patch of skin is brighter when the head turns it towards the (world-fixed) light."""
    person = make_person(4)
    zeros = np.zeros(2)
    motion = dataclasses.replace(video_motion(4, 0, 2), yaw=np.radians([-25.0, 25.0]), pitch=zeros, roll=zeros,
                                 mouth=zeros, smile=zeros, brows=zeros, blink=zeros, gaze=np.zeros((2, 2)),
                                 shift=np.zeros((2, 2)), light=np.array([-0.8, 0.0, 0.6]), ambient=0.3)
    camera = make_camera(person, motion, rotation_matrices(motion.yaw, motion.pitch, motion.roll), 128)
    frames, lms = render(person, motion, expression_layout(person, motion), camera, 128)

    def cheek(i: int, jaw: int, nose: int) -> float:   # a patch between a jaw point and the nose base
        x, y = np.round(0.5 * (lms[i, jaw] + lms[i, nose])).astype(int)
        return _luma(frames[i][y - 1:y + 2, x - 1:x + 2].reshape(-1, 3)).mean()
    # Light from image-left; frame 0 turns the face towards it, frame 1 away from it.
    assert cheek(0, 13, 35) > 1.4 * cheek(1, 13, 35)
    assert cheek(0, 3, 31) > 1.04 * cheek(1, 3, 31)   # already well lit in both: a smaller gain
    # The nose turns with the head: its tip moves across the face (parallax, not a 2D shift).
    tip_offset = [lms[i, 30, 0] - 0.5 * (lms[i, 0, 0] + lms[i, 16, 0]) for i in range(2)]
    assert tip_offset[0] < -5 and tip_offset[1] > 5


def test_frontal_face_follows_the_framing_contract():
    """A frontal synthetic frame is exactly the crop that real photos get from landmarks.crop_box:
    its 68-point bbox spans FACE_FRACTION of the side, centred FACE_CENTER_DROP below the middle."""
    size = 256
    for identity in range(5):
        person = make_person(identity)
        motion = dataclasses.replace(video_motion(identity, 0, 1), scale=1.0, shift=np.zeros((1, 2)))
        camera = make_camera(person, motion, rotation_matrices(np.zeros(1), np.zeros(1), np.zeros(1)), size)
        lm = project(person.layout[None], camera)[0]
        lo, hi = lm.min(0), lm.max(0)
        assert (hi - lo).max() == pytest.approx(FACE_FRACTION * size, rel=1e-6)
        centre = 0.5 * (lo + hi) + 0.5   # pixel centres are integers; the image spans [-0.5, size - 0.5]
        np.testing.assert_allclose(centre, [size / 2, size / 2 + FACE_CENTER_DROP * size], atol=1e-6)
        # The image edge is at -0.5 in pixel-centre coordinates: the crop is the whole frame.
        np.testing.assert_allclose(crop_box(lm), (-0.5, -0.5, size), atol=1e-6)


def test_identity_split_is_fixed_and_near_the_target_fraction():
    config = SyntheticConfig(heldout_fraction=0.1)
    splits = [identity_split(i, config) for i in range(3000)]
    assert splits == [identity_split(i, config) for i in range(3000)]
    assert set(splits) == {"train", "heldout"}
    assert abs(splits.count("heldout") / 3000 - 0.1) < 0.02
    assert [identity_split(i, SyntheticConfig(seed=1)) for i in range(200)] != splits[:200]
    assert all(identity_split(i, SyntheticConfig(heldout_fraction=0.0)) == "train" for i in range(100))


def test_generate_dataset_round_trips_and_resumes(tmp_path: Path):
    config = SyntheticConfig(image_size=32, frames_per_video=3, heldout_fraction=0.5)
    records = generate_dataset(tmp_path, 3, 2, config, progress=False)
    assert len(records) == 6
    size, index = read_index(tmp_path)
    assert size == 32 and index == records
    assert {r.split for r in records} == {identity_split(i, config) for i in range(3)}
    frames, landmarks = read_frames(tmp_path, records[3])
    expected_frames, expected_landmarks = render_video(1, 1, 3, 32, seed=0)
    assert records[3].person == "syn00001" and records[3].video == "v01"
    np.testing.assert_array_equal(frames, expected_frames)
    np.testing.assert_array_equal(landmarks, expected_landmarks)

    stamps = {p: os.stat(p).st_mtime_ns for p in (tmp_path / "videos").glob("*/*.safetensors")}
    again = generate_dataset(tmp_path, 3, 2, config, progress=False)
    assert again == records
    assert {p: os.stat(p).st_mtime_ns for p in (tmp_path / "videos").glob("*/*.safetensors")} == stamps


@pytest.mark.slow
def test_generate_dataset_with_worker_processes_writes_the_same_clips(tmp_path: Path):
    config = SyntheticConfig(image_size=32, frames_per_video=2)
    records = generate_dataset(tmp_path, 2, 2, config, progress=False, workers=2)
    assert [(r.person, r.video) for r in records] == [(f"syn{i:05d}", f"v{v:02d}") for i in range(2) for v in range(2)]
    for record, (identity, video) in zip(records, [(i, v) for i in range(2) for v in range(2)]):
        frames, landmarks = read_frames(tmp_path, record)
        expected_frames, expected_landmarks = render_video(identity, video, 2, 32)
        np.testing.assert_array_equal(frames, expected_frames)
        np.testing.assert_array_equal(landmarks, expected_landmarks)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="image_size"):
        SyntheticConfig(image_size=8)
    with pytest.raises(ValueError, match="heldout_fraction"):
        SyntheticConfig(heldout_fraction=1.0)
    with pytest.raises(ValueError, match="image_size"):
        render_video(0, 0, 2, 8)
    with pytest.raises(ValueError, match="identity_id"):
        render_video(-1, 0, 2, 32)
    with pytest.raises(ValueError, match="workers"):
        generate_dataset("unused", 1, 1, SyntheticConfig(), workers=0)


@pytest.mark.slow
def test_a_real_photo_face_detector_finds_the_faces_and_their_landmarks():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "synthetic_realism.py"
    spec = importlib.util.spec_from_file_location("synthetic_realism", path)
    realism = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = realism   # dataclasses look their module up while it executes
    spec.loader.exec_module(realism)
    result = realism.measure(num_identities=10, frames_per_identity=2, image_size=256, first_identity=500,
                             frames_per_video=4, upsample=0)
    assert result.detection_rate >= 0.85
    assert result.median_error < 0.1


def test_rounded_lips_narrow_the_mouth_and_its_opening_more_than_the_lips():
    """An "o" draws the corners in (the inner ones more: pursed lips thicken at the corners) and parts the lips
    evenly, so synthetic speech moves the mouth's width by about a fifth, as real speech does."""
    person = make_person(4)
    motion = video_motion(4, 0, 2)
    zeros, rounded = np.zeros(2), np.array([0.0, 1.0])
    motion = dataclasses.replace(motion, mouth=zeros, smile=zeros, rounding=rounded)
    spread, pursed = expression_layout(person, motion)
    outer = (pursed[54, 0] - pursed[48, 0]) / (spread[54, 0] - spread[48, 0])
    inner = (pursed[64, 0] - pursed[60, 0]) / (spread[64, 0] - spread[60, 0])
    assert outer < 0.75 and inner < outer - 0.1
    assert (pursed[66, 1] - pursed[62, 1]) > (spread[66, 1] - spread[62, 1]) + 0.03  # the lips part
    # Within each video, in eye distances, seen from the front: measured 0.07-0.10 (opening and smile alone 0.04-0.05).
    spread_in_video = [mouth_width(expression_layout(make_person(i), video_motion(i, 0, 64))[..., :2]).std()
                       for i in range(4)]
    assert min(spread_in_video) > 0.065
