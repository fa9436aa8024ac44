"""Paste-back at the photo's own resolution, and side-by-side's photo panel as sharp as the photo (issue 28)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from talking_head.avatar import Avatar
from talking_head.landmarks.align import crop_box, crop_face, from_crop_coords
from talking_head.landmarks.detect import detect_face, get_detector
from talking_head.limits import Limits
from talking_head.media import VideoSink, iter_video_frames
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import DEFAULT_OUTPUT_SIZE, FrameLayout, PasteView, RenderConfig, paste_into_photo, photo_window

#: Where the astronaut's face sits in the half-body photo (the issue's: 300 x 300 in a grey 3000 x 2000 photo).
PORTRAIT, CANVAS, AT = 300, (2000, 3000), (600, 1350)


@pytest.fixture(scope="module")
def pipe(tiny_weights: Path) -> TalkingHeadPipeline:
    return TalkingHeadPipeline.from_pretrained(tiny_weights, device="cpu", landmark_backend="dlib")


@pytest.fixture(scope="module")
def half_body(astronaut: np.ndarray) -> np.ndarray:
    photo = np.full((*CANVAS, 3), 128, np.uint8)
    y, x = AT
    photo[y:y + PORTRAIT, x:x + PORTRAIT] = cv2.resize(astronaut, (PORTRAIT, PORTRAIT), interpolation=cv2.INTER_AREA)
    return photo


@pytest.fixture(scope="module")
def half_body_avatar(pipe: TalkingHeadPipeline, half_body: np.ndarray) -> Avatar:
    return pipe.personalize([half_body], steps=0)


def face_height(image: np.ndarray) -> float:
    """How many pixels tall dlib sees the face: its 68 landmarks, brow to chin."""
    return float(np.ptp(detect_face(image, get_detector("dlib")).landmarks[:, 1]))


@pytest.fixture(scope="module")
def still_driver(half_body: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five frames of the half-body photo's face region standing still: the face keeps its pose and its size."""
    y, x = AT
    still = np.ascontiguousarray(half_body[y - 90:y + 390, x - 170:x + 470])
    path = tmp_path_factory.mktemp("still") / "still.mp4"
    with VideoSink(path, still.shape[1], still.shape[0], 25.0) as sink:
        for _ in range(5):
            sink.write(still)
    return path


def test_paste_back_keeps_the_face_as_tall_as_in_the_photo(pipe: TalkingHeadPipeline, half_body: np.ndarray,
                                                           half_body_avatar: Avatar, still_driver: Path,
                                                           tmp_path: Path) -> None:
    """Acceptance 3: with the output's height left unset, the half-body photo is cut around the face at its own
    resolution (at most the limit), not shrunk whole to 256 px (where her face was 7 px tall)."""
    result = pipe.animate(half_body_avatar, still_driver, tmp_path / "pasted.mp4", RenderConfig(paste_back=True))
    limit = pipe.limits.max_output_size
    assert (result.height, result.width) == (limit, limit)  # 2000 x 3000 cut to the limit, not shrunk
    found = crop_box(detect_face(half_body, get_detector("dlib")).landmarks)
    window, box = photo_window(half_body_avatar.photo, half_body_avatar.photo_box, limit)
    assert box[2] == pytest.approx(found[2], rel=0.02)  # the avatar keeps the face at the photo's own size
    in_photo = face_height(half_body)
    for frame in iter_video_frames(result.path):
        assert face_height(frame) >= in_photo * 0.99, (face_height(frame), in_photo)
    # Around the face (and above the 'synthetic' mark along the bottom), the frame is the photo's own pixels, unscaled.
    x0, y0, side = box
    outside = np.zeros(window.shape[:2], bool)
    outside[:limit * 3 // 4] = True
    outside[max(0, int(y0 - side / 4)):int(y0 + side * 1.25), max(0, int(x0 - side / 4)):int(x0 + side * 1.25)] = False
    diff = np.abs(frame.astype(float) - window).mean(axis=2)
    assert diff[outside].mean() < 3


def test_an_output_size_set_by_the_user_still_fits_the_whole_photo(pipe: TalkingHeadPipeline,
                                                                   half_body_avatar: Avatar) -> None:
    limits = Limits()
    layout = FrameLayout.plan([half_body_avatar], (160, 160), RenderConfig(paste_back=True, output_size=256),
                              None, limits)
    photo = half_body_avatar.photo
    assert layout.height == 256 and layout.column_widths == (round(photo.shape[1] * 256 / photo.shape[0] / 2) * 2,)
    unset = FrameLayout.plan([half_body_avatar], (160, 160), RenderConfig(), None, Limits(max_output_size=200))
    assert unset.height == 200 and DEFAULT_OUTPUT_SIZE > 200  # the default, at most the limit: never refused


def test_a_pasted_face_changes_only_its_box_and_lands_where_the_box_says(half_body_avatar: Avatar) -> None:
    avatar, size = half_body_avatar, 128
    photo, (x0, y0, side) = avatar.photo, avatar.photo_box
    face = cv2.resize(avatar.source_crop, (size, size), interpolation=cv2.INTER_AREA)
    for at in (20, 100):  # magenta marks at crop pixels 20-27 and 100-107: their centres 23.5 and 103.5
        face[at:at + 8, at:at + 8] = (255, 0, 255)
    out = paste_into_photo(avatar, face, avatar.source_landmarks * size / avatar.image_size, photo.shape[0],
                           PasteView(photo, avatar.photo_box))
    rows, cols = np.nonzero((out != photo).any(axis=2))
    assert rows.min() >= y0 - 1 and rows.max() <= y0 + side + 1 and cols.min() >= x0 - 1 and cols.max() <= x0 + side + 1
    mark = (out[..., 0] > 180) & (out[..., 1] < 100) & (out[..., 2] > 180)
    count, labels = cv2.connectedComponents(mark.astype(np.uint8))
    assert count == 3  # the background and the two marks
    found = sorted((np.nonzero(labels == i)[1].mean(), np.nonzero(labels == i)[0].mean()) for i in (1, 2))
    expected = from_crop_coords(np.array([[23.5, 23.5], [103.5, 103.5]]), avatar.photo_box, size)
    assert np.abs(np.array(found) - expected).max() < 1.0  # in place and at the box's scale
    # and the face's own pixels: a cubic warp of it onto its exact box, all but the rounding to whole pixels
    scale = side / size
    exact = cv2.warpAffine(face, np.array([[scale, 0, x0], [0, scale, y0]]), photo.shape[1::-1], flags=cv2.INTER_CUBIC)
    inner = (slice(int(y0 + 0.1 * side), int(y0 + 0.9 * side)), slice(int(x0 + 0.1 * side), int(x0 + 0.9 * side)))
    assert np.corrcoef(out[inner].ravel(), exact[inner].ravel())[0, 1] > 0.95


def test_a_pure_synthesis_face_is_pasted_inside_its_hull(half_body_avatar: Avatar) -> None:
    # The other mask: a pure-synthesis crop goes back only inside the face's hull. Only ``photo``, ``photo_box`` and
    # ``texture_path`` are read, so the same avatar's photo stands in with the synthesis flag.
    avatar, size = half_body_avatar, 128
    synthesis = SimpleNamespace(photo=avatar.photo, photo_box=avatar.photo_box, texture_path=False)
    face = np.zeros((size, size, 3), np.uint8)
    face[:] = (255, 0, 255)
    landmarks = avatar.source_landmarks * size / avatar.image_size
    out = paste_into_photo(synthesis, face, landmarks, avatar.photo.shape[0], PasteView(avatar.photo, avatar.photo_box))
    in_photo = from_crop_coords(landmarks, avatar.photo_box, size).round().astype(int)
    magenta = (out[..., 0] > 200) & (out[..., 1] < 60) & (out[..., 2] > 200)
    for x, y in in_photo[[28, 30, 33, 51, 57]]:  # the nose, the lips: well inside the hull
        assert magenta[y, x], (x, y)
    x0, y0, side = (int(v) for v in avatar.photo_box)
    for x, y in ((x0 + 2, y0 + 2), (x0 + side - 3, y0 + 2)):  # the crop's top corners: outside the face, the photo's
        assert (out[y, x] == avatar.photo[y, x]).all(), (x, y)


def test_a_photo_window_is_cut_not_shrunk_unless_the_face_is_large() -> None:
    photo = np.random.default_rng(0).integers(0, 255, (2000, 3000, 3), np.uint8)
    cut, (x0, y0, side) = photo_window(photo, (1400.0, 700.0, 200.0), 1024)
    assert cut.shape[:2] == (1024, 1024) and side == 200.0
    assert np.array_equal(cut[int(y0):int(y0) + 200, int(x0):int(x0) + 200], photo[700:900, 1400:1600])
    corner, (cx, cy, _) = photo_window(photo, (-50.0, -50.0, 200.0), 1024)  # a face at the edge: the window
    assert corner.shape[:2] == (1024, 1024) and (cx, cy) == (-50.0, -50.0)  # stays on the photo
    big, (_, _, big_side) = photo_window(photo, (500.0, 200.0, 1600.0), 1024)  # a face crop over half the window
    assert big_side == pytest.approx(512.0) and max(big.shape[:2]) <= 1024
    small, box = photo_window(photo[:300, :401], (100.0, 50.0, 120.0), 1024)
    assert small.shape[:2] == (300, 400) and box == (100.0, 50.0, 120.0)  # a small photo whole (even sides)


def laplacian_variance(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def test_the_side_by_side_photo_panel_is_as_sharp_as_the_photo(pipe: TalkingHeadPipeline,
                                                               astronaut: np.ndarray) -> None:
    """Side by side at 512 px, the photo's panel was the network's 128 px crop scaled up: softer than the result
    beside it. It is cut from the photo itself, as sharp as the photo's own crop resized to 512 px."""
    avatar = pipe.personalize([astronaut], steps=0)
    layout = FrameLayout.plan([avatar], (160, 160), RenderConfig(side_by_side=True, output_size=512), None,
                              Limits())
    assert layout.source is not None and layout.source.shape[:2] == (512, 512)
    found = detect_face(astronaut, get_detector("dlib"))
    own = crop_face(astronaut, found.landmarks, 512)[0]
    face = (slice(128, 384), slice(128, 384))
    panel, reference = laplacian_variance(layout.source[face]), laplacian_variance(own[face])
    scaled_up = laplacian_variance(cv2.resize(avatar.source_crop, (512, 512), interpolation=cv2.INTER_LINEAR)[face])
    assert panel >= 0.9 * reference, (panel, reference)
    assert scaled_up < 0.5 * reference  # what the panel was: the test can tell them apart
