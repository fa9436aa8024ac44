"""Face detection and 68-point landmarks on real photos (offline dlib backend), input handling, and the
face-alignment backend's behaviour with no network."""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

import talking_head.landmarks.detect as detect_module
from talking_head.errors import InputError
from talking_head.landmarks import (BackendUnavailable, FaceAlignmentBackend, NoFaceError, detect_face,
                                    detect_video, get_detector, to_rgb_uint8)
from talking_head.landmarks.detect import PHOTO_SEARCH, DlibBackend

# Hand-checked points on skimage.data.astronaut() (512 x 512), pixels (x, y).
REFERENCE = {
    "right_eye_centre": (203, 101), "left_eye_centre": (246, 104), "nose_tip": (225, 127),
    "mouth_right_corner": (201, 139), "mouth_left_corner": (246, 141),
}


def named_points(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    return {"right_eye_centre": landmarks[36:42].mean(axis=0), "left_eye_centre": landmarks[42:48].mean(axis=0),
            "nose_tip": landmarks[30], "mouth_right_corner": landmarks[48], "mouth_left_corner": landmarks[54]}


def max_reference_error(landmarks: np.ndarray, scale: float = 1.0) -> float:
    points = named_points(landmarks)
    return max(float(np.linalg.norm(points[name] / scale - np.array(ref))) for name, ref in REFERENCE.items())


@pytest.fixture(scope="module")
def dlib_detector():
    return get_detector("dlib")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


def test_dlib_finds_the_astronauts_face_and_landmarks_near_reference_points(dlib_detector, astronaut):
    # The picture of this result, docs/landmarks_astronaut.png, is made by
    # `python benchmarks/bench_landmarks.py --figures docs`.
    face = detect_face(astronaut, dlib_detector)
    assert face.num_faces == 1
    assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float32
    assert max_reference_error(face.landmarks) < 6.0
    x0, y0, x1, y1 = face.box
    assert x0 < face.landmarks[30, 0] < x1 and y0 < face.landmarks[30, 1] < y1


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_faceless_photos_raise_no_face_error_with_a_readable_message(dlib_detector, name):
    # Every pass runs on these, the finest HOG scales and the CNN included: none may see a face.
    with pytest.raises(NoFaceError, match="No face was found in this image"):
        detect_face(getattr(data, name)(), dlib_detector)
    assert issubclass(NoFaceError, ValueError)


def test_two_faces_the_largest_is_used_and_the_count_reported(dlib_detector, astronaut, caplog):
    # The astronaut twice, side by side, at full and 3/4 scale (320 x 640: no downscaling for detection).
    smaller = cv2.resize(astronaut, None, fx=0.75, fy=0.75, interpolation=cv2.INTER_AREA)
    canvas = np.concatenate([astronaut[:320, 40:360], smaller[:320, :320]], axis=1)
    with caplog.at_level(logging.WARNING, logger="talking_head.landmarks.detect"):
        face = detect_face(canvas, dlib_detector)
    assert face.num_faces == 2
    assert max_reference_error(face.landmarks + (40, 0)) < 6.0  # the full-size face on the left
    assert "found 2 faces" in caplog.text
    faces = dlib_detector.detect(canvas)
    assert faces[0].area > 1.2 * faces[1].area and faces[1].box[0] > 320


def test_large_photos_are_searched_downscaled_but_landmarked_at_full_resolution(dlib_detector, astronaut):
    big = cv2.resize(astronaut, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)  # 1536 px, above the 640 limit
    face = detect_face(big, dlib_detector)
    # Pixel centres: original pixel x sits at 3x + 1 in the upscaled photo.
    assert max_reference_error(face.landmarks - 1.0, scale=3.0) < 4.0


def test_small_faces_are_found_by_upsampling(dlib_detector, astronaut):
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)  # face ~44 px: HOG needs ~80
    face = detect_face(small, dlib_detector)
    assert max_reference_error(face.landmarks + 0.5, scale=0.5) < 6.0


def test_landmarks_in_a_known_box_match_a_full_detection(dlib_detector, astronaut):
    face = detect_face(astronaut, dlib_detector)
    shifted = np.roll(astronaut, (3, -2), axis=(0, 1))  # the head moved a little; reuse last frame's box
    tracked = dlib_detector.landmarks_in_box(shifted, face.box)
    assert np.abs(tracked.landmarks - (face.landmarks + (-2, 3))).mean() < 1.5


def test_input_conversion_accepts_grayscale_rgba_uint16_and_float(dlib_detector, astronaut):
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    for image in (gray, gray[..., None], rgba, astronaut.astype(np.uint16) * 257, astronaut / 255.0):
        converted = to_rgb_uint8(image)
        assert converted.shape == (512, 512, 3) and converted.dtype == np.uint8
    np.testing.assert_array_equal(to_rgb_uint8(astronaut.astype(np.uint16) * 257), astronaut)
    np.testing.assert_array_equal(to_rgb_uint8(rgba), astronaut)
    assert max_reference_error(detect_face(gray, dlib_detector).landmarks) < 6.0
    with pytest.raises(ValueError, match="shape"):
        to_rgb_uint8(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_rgb_uint8(astronaut.astype(np.float32))


def test_detect_video_streams_and_marks_faceless_frames(dlib_detector, astronaut):
    faceless = cv2.resize(data.coffee(), (512, 512))
    pulled = []

    def frames():
        for frame in (astronaut, faceless, astronaut):
            pulled.append(frame)
            yield frame

    stream = detect_video(frames(), dlib_detector)
    first = next(stream)
    assert len(pulled) == 1  # nothing read ahead: a long video is never held in memory
    rest = list(stream)
    assert first.shape == (68, 2) and rest[0] is None and rest[1].shape == (68, 2)


def test_get_detector_caches_and_rejects_unknown_backends():
    assert get_detector("dlib") is get_detector("dlib")
    assert get_detector("auto").name == "dlib"  # no pickled weights fetched from outside unless asked by name
    assert get_detector("dlib").name == "dlib"
    with pytest.raises(ValueError, match="unknown landmark backend"):
        get_detector("mediapipe")


def _face_alignment_can_load() -> bool:
    cached = list((Path.home() / ".cache" / "torch" / "hub" / "checkpoints").glob("2DFAN4*"))
    try:
        socket.create_connection(("www.adrianbulat.com", 443), timeout=3).close()
        return True
    except OSError:
        return bool(cached)


@pytest.mark.skipif(_face_alignment_can_load(), reason="face-alignment weights are reachable here")
def test_face_alignment_without_network_fails_fast_in_one_line():
    start = time.perf_counter()
    with pytest.raises(BackendUnavailable, match="face_alignment backend could not load its weights") as error:
        FaceAlignmentBackend(device="cpu")
    assert time.perf_counter() - start < 15.0
    assert "\n" not in str(error.value)


# ------------------------------------------------------------------------------- small faces, big photos
#: The astronaut's face is 93 px across (jaw end to jaw end) in her 512 px portrait.
ASTRONAUT_FACE_WIDTH = 93


def astronaut_with_face(width: float, canvas: tuple[int, int] | None = None, background: np.ndarray | None = None
                        ) -> tuple[np.ndarray, float, tuple[int, int]]:
    """The astronaut scaled so her face is ``width`` px across, alone or placed at a third of a grey (or
    ``background``) canvas of ``(width, height)``: the photo, the scale, and where her portrait's corner is."""
    scale = width / ASTRONAUT_FACE_WIDTH
    side = round(512 * scale)
    portrait = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    if canvas is None:
        return portrait, side / 512, (0, 0)
    w, h = canvas
    photo = np.full((h, w, 3), 128, np.uint8) if background is None else cv2.resize(background, (w, h))
    x, y = (w - side) // 2, (h - side) // 3
    photo[y:y + side, x:x + side] = portrait
    return photo, side / 512, (x, y)


def to_astronaut_pixels(landmarks: np.ndarray, scale: float, corner: tuple[int, int]) -> np.ndarray:
    """Landmarks of a resized, placed astronaut back in her 512 px portrait's pixels (pixel centres)."""
    return (landmarks - np.array(corner, np.float32) + 0.5) / scale - 0.5


@pytest.mark.parametrize("width, canvas", [
    (29, None),  # the astronaut at 160 x 160 (the first row)
    (40, None),
    (54, (3000, 2000)),  # the astronaut at 300 x 300 in a grey 3000 x 2000 half-body photo
    (40, (4000, 3000)),  # a 40 px face in a 12-megapixel photo
])
def test_small_faces_in_small_and_big_photos_are_found_within_two_cpu_seconds(dlib_detector, width, canvas):
    photo, scale, corner = astronaut_with_face(width, canvas)
    start = time.process_time()  # this process's CPU time: other processes on a shared machine do not count
    faces = dlib_detector.detect(photo)
    seconds = time.process_time() - start
    assert len(faces) == 1 and abs(faces[0].width - width) < 0.15 * width
    # Within a few pixels of the hand-checked points, in the 512 px portrait's pixels (8 there is 0.5 px at 29 px).
    assert max_reference_error(to_astronaut_pixels(faces[0].landmarks, scale, corner)) < 8.0
    assert seconds < 2.0, f"{seconds:.2f} s of CPU to find a {width} px face in a {photo.shape[1]} x {photo.shape[0]}"


def test_a_low_resolution_video_frame_is_searched_finely(dlib_detector):
    # A 176 x 144 (QCIF) frame, the astronaut's proportions kept: her face about 32 px across.
    frame = cv2.resize(data.astronaut()[:419], (176, 144), interpolation=cv2.INTER_AREA)
    assert dlib_detector.detect(frame) and dlib_detector.detect_frame(frame)


def test_a_small_face_is_landmarked_on_an_upsampled_crop(dlib_detector, monkeypatch):
    photo, scale, corner = astronaut_with_face(29)
    face = dlib_detector.detect(photo)[0]
    upsampled = max_reference_error(to_astronaut_pixels(face.landmarks, scale, corner))
    monkeypatch.setattr(detect_module, "LANDMARK_MIN_SIDE", 0)  # the predictor on the 160 px photo itself
    direct = max_reference_error(to_astronaut_pixels(dlib_detector.landmarks_in_box(photo, face.box).landmarks,
                                                     scale, corner))
    # Measured: 1.4 px on the upsampled crop, 3.4 px at the photo's own size (portrait pixels).
    assert upsampled < 2.5 and direct > upsampled + 1.0


def test_the_fine_search_stops_at_its_budget_on_a_big_busy_photo(dlib_detector):
    # 12 megapixels of coffee texture, no face: the finest scales cost more than the budget, so the search
    # stops there instead of scanning 48 megapixels (about 6 s here).
    photo = cv2.resize(data.coffee(), (4000, 3000), interpolation=cv2.INTER_LINEAR)
    start = time.process_time()
    assert dlib_detector.detect(photo) == []
    assert time.process_time() - start < 4.0


def test_the_cnn_detector_finds_a_tilted_face_that_hog_misses(dlib_detector):
    close_up = data.astronaut()[20:280, 95:355]  # 260 px, her face 93 px across
    tilted = cv2.warpAffine(close_up, cv2.getRotationMatrix2D((130, 110), 50, 1.0), (260, 260),
                            borderMode=cv2.BORDER_REFLECT)
    hog_only = DlibBackend(replace(PHOTO_SEARCH, cnn_megapixels=0.0))
    assert hog_only.detect(tilted) == []
    faces = dlib_detector.detect(tilted)
    assert len(faces) == 1
    # Her face's centre, turned with the picture: the nose tip (225, 127) -> crop (130, 107), about the centre.
    nose = np.array([130.0, 107.0])
    centre = np.array([(faces[0].box[0] + faces[0].box[2]) / 2, (faces[0].box[1] + faces[0].box[3]) / 2])
    assert np.linalg.norm(centre - nose) < 20
    assert dlib_detector.detect_frame(tilted) == []  # no CNN on video frames: too slow per frame


def test_a_chosen_face_by_size_and_a_clear_error_for_one_that_is_not_there(dlib_detector, astronaut):
    smaller = cv2.resize(astronaut, None, fx=0.75, fy=0.75, interpolation=cv2.INTER_AREA)
    canvas = np.concatenate([astronaut[:320, 40:360], smaller[:320, :320]], axis=1)
    second = detect_face(canvas, dlib_detector, face=2)
    assert second.num_faces == 2 and second.box[0] > 320  # the smaller, on the right
    with pytest.raises(InputError, match="2 faces found, so there is no face 3"):
        detect_face(canvas, dlib_detector, face=3)
