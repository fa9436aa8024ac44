"""The second mouth judge of ``benchmarks/mesh_judge.py`` (MediaPipe's Face Mesh): its geometry, without the model
(an optional download for benchmarks only; with the model installed, the last test reads a real face)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _judge_module():
    spec = importlib.util.spec_from_file_location("mesh_judge", ROOT / "benchmarks" / "mesh_judge.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


judge = _judge_module()


def test_a_crop_and_its_inverse_take_image_points_back_where_they_were():
    to_crop = judge.crop_transform(np.array([130.0, 90.0]), 150.0)
    points = np.array([[130.0, 90.0], [55.0, 15.0], [205.0, 165.0]])
    in_crop = points @ to_crop[:, :2].T + to_crop[:, 2]
    np.testing.assert_allclose(in_crop, [[96, 96], [0, 0], [192, 192]], atol=1e-4)
    np.testing.assert_allclose(judge.from_crop(in_crop, to_crop), points, atol=1e-4)


def test_opening_and_width_are_in_eye_distances_and_follow_the_mesh_points():
    points = np.zeros((468, 2))
    (a, b), (c, d) = judge.EYE_CORNERS
    points[[a, b]], points[[c, d]] = [[-60, 0], [-20, 0]], [[20, 0], [60, 0]]  # eye centres 80 apart
    left, right = judge.MOUTH_CORNERS
    points[left], points[right] = [-40, 100], [40, 100]
    for upper, lower in judge.INNER_LIP_PAIRS:
        points[upper], points[lower] = [0, 95], [0, 107]
    assert judge.mouth_of(points) == pytest.approx((12 / 80, 80 / 80))
    points[right] = [20, 100]
    assert judge.mouth_of(points)[1] == pytest.approx(60 / 80)


MODEL = ROOT / "benchmarks" / "models" / judge.MODEL_NAME


def test_the_model_is_taken_from_a_wheel_downloaded_elsewhere(tmp_path):
    import zipfile
    wheel = tmp_path / "mediapipe-0.10.21-cp311-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(judge.MODEL_IN_WHEEL, b"the model's bytes")
        archive.writestr("mediapipe/__init__.py", b"")
    model = judge.fetch_model(tmp_path / "models", wheel)
    assert model == tmp_path / "models" / judge.MODEL_NAME and model.read_bytes() == b"the model's bytes"
    other = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("other/__init__.py", b"")
    with pytest.raises(SystemExit, match="has no"):
        judge.fetch_model(tmp_path / "models", other)
    for unreadable in (tmp_path / "missing.whl", tmp_path / "notes.txt"):
        (tmp_path / "notes.txt").write_text("not a wheel")
        with pytest.raises(SystemExit, match="could not be read"):
            judge.fetch_model(tmp_path / "models", unreadable)


@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None or not MODEL.exists(),
                    reason="the Face Mesh judge is optional: pip install ai-edge-litert; mesh_judge.py --fetch")
def test_face_mesh_reads_the_astronauts_mouth_as_a_shut_smile_of_a_plausible_width():
    from talking_head.landmarks.detect import get_detector

    photo = cv2.cvtColor(cv2.imread(str(ROOT / "examples" / "astronaut.jpg")), cv2.COLOR_BGR2RGB)
    box = get_detector("dlib").detect(photo)[0].box
    mesh = judge.MeshJudge(MODEL)
    opening, width = mesh.mouth(photo, box)
    assert 0.7 < width < 1.4 and opening < 0.5
