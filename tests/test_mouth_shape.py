"""The photo's mouth takes the driver's shape, not only its opening: an "O" narrows it, a smile widens it.

The driver is a synthetic face with exact landmarks; the photo is a real one (scikit-image's astronaut, who
smiles); dlib, which is not the project's code, reads the output's mouth.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from talking_head.data.synthetic import render_video
from talking_head.face_render import render_faces
from talking_head.landmarks import Retargeter, get_detector
from talking_head.landmarks.align import inter_ocular_distance
from talking_head.landmarks.mouth import inner_lip_outline, mouth_opening, mouth_width
from talking_head.pipeline import TalkingHeadPipeline

LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]


def mouth_shape(face: np.ndarray, narrowing: float, opening: float) -> np.ndarray:
    """``face`` with its mouth narrowed about its centre (negative: widened) and its lower lip dropped (eye
    distances)."""
    points = face.astype(np.float64).copy()
    centre = points[48:68].mean(0)
    points[48:68, 0] = centre[0] + (points[48:68, 0] - centre[0]) * (1 - narrowing)
    points[LOWER_LIP, 1] += opening * inter_ocular_distance(face)
    return points


@pytest.fixture(scope="module")
def avatar(trained_tiny, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    pipe = TalkingHeadPipeline.from_pretrained(trained_tiny, device="cpu", landmark_backend="dlib")
    return pipe.personalize([path], steps=0)


def rendered_mouth(avatar, driver_reference: np.ndarray, driver: np.ndarray) -> tuple[float, float]:
    """dlib's (width, opening) of the photo's face driven from ``driver_reference`` to ``driver``."""
    retarget = Retargeter(avatar.source_landmarks)
    retarget(driver_reference)
    face = render_faces(avatar, retarget(driver)[None], 256)[0]
    found = get_detector("dlib").detect(face)
    assert found, "dlib finds the rendered face"
    return float(mouth_width(found[0].landmarks)), float(mouth_opening(found[0].landmarks))


@pytest.mark.slow
def test_an_o_narrows_the_photos_mouth_and_a_smile_widens_it(avatar):
    _, landmarks = render_video(30, 0, 1, 256)
    neutral = landmarks[0]
    ah_width, ah_opening = rendered_mouth(avatar, neutral, mouth_shape(neutral, 0.0, 0.3))
    o_width, o_opening = rendered_mouth(avatar, neutral, mouth_shape(neutral, 0.25, 0.3))
    closed_width, _ = rendered_mouth(avatar, neutral, neutral)
    wide_width, _ = rendered_mouth(avatar, neutral, mouth_shape(neutral, -0.15, 0.0))
    assert abs(o_opening - ah_opening) < 0.05  # the same opening
    assert o_width < ah_width - 0.1  # measured: 0.87 against 1.03
    assert wide_width > closed_width + 0.03  # measured: 1.01 against 0.96


def test_the_inside_of_the_mouth_is_drawn_with_round_lips_through_its_landmarks():
    """The opening's outline passes through the eight inner-lip points, bulges past the straight chords between
    them where a lip curves (an octagon read as a polygonal mouth at 512 px), stays pointed at the corners and has
    no area when the lips are shut."""
    _, landmarks = render_video(3, 0, 1, 256)
    opened = mouth_shape(landmarks[0], 0.0, 0.2)
    outline = inner_lip_outline(opened, steps=6)
    assert np.allclose(outline[::6], opened[[60, 61, 62, 63, 64, 65, 66, 67]])
    lower_chord_middle = (opened[66] + opened[67]) / 2
    curve_middle = outline[6 * 6 + 3]  # half-way from 66 to 67 along the lower lip
    lip_centre = opened[60:68].mean(0)
    assert np.linalg.norm(curve_middle - lip_centre) > np.linalg.norm(lower_chord_middle - lip_centre) + 0.2
    octagon = cv2.contourArea(opened[60:68].astype(np.float32))
    assert octagon < cv2.contourArea(outline.astype(np.float32)) < 1.3 * octagon
    shut = opened.copy()
    shut[[65, 66, 67]] = shut[[63, 62, 61]]
    assert cv2.contourArea(inner_lip_outline(shut).astype(np.float32)) < 1e-3 * octagon
