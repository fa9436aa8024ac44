"""A second judge of the mouth's shape: MediaPipe's Face Mesh (468 points), independent of dlib and of this project.

dlib's 68-point predictor is the project's judge; for the mouth's *width* it is a weak one (on the synthetic
drivers' own frames, whose widths are exact, it reads width at r -0.02 to 0.76). A second model, trained on
other real photos by other people, tells whether a low width r is the rendering's or the judge's: Face Mesh
v1 (``face_landmark.tflite``, Apache-2.0), the model MediaPipe's face mesh solution shipped inside its wheel up
to version 0.10.21, run with LiteRT (``ai-edge-litert``). Only for benchmarks: the package never imports it.

    pip install ai-edge-litert
    python benchmarks/mesh_judge.py --fetch benchmarks/models   # once: the model from the mediapipe wheel on PyPI
    # (offline: --wheel mediapipe-0.10.21-....whl, downloaded elsewhere)

The mesh is read as MediaPipe reads it: a square crop 1.5 times the face around its centre, 192 px, values in
[0, 1]; the crop is then re-centred twice on the mesh itself (MediaPipe's tracking does the same from frame to
frame). Opening: the inner lips' gap at three pairs; width: corner to corner; both over the eye distance
(the eye corners' midpoints), as ``talking_head.landmarks.mouth`` measures dlib's points.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

#: The last mediapipe release whose wheel carries the face mesh model (later ones download it at run time).
MEDIAPIPE_WITH_MODEL = "mediapipe==0.10.21"
MODEL_IN_WHEEL = "mediapipe/modules/face_landmark/face_landmark.tflite"
MODEL_NAME = "face_landmark.tflite"
INPUT_SIZE = 192
#: The crop's side over the face's (MediaPipe's region of interest from a detection or from the last mesh).
CROP_SCALE = 1.5
#: Face Mesh indices: inner-lip pairs (upper, lower), the mouth's corners, each eye's corners.
INNER_LIP_PAIRS = ((82, 87), (13, 14), (312, 317))
MOUTH_CORNERS = (61, 291)
EYE_CORNERS = ((33, 133), (362, 263))


def fetch_model(folder: Path, wheel: Path | None = None) -> Path:
    """``face_landmark.tflite`` taken from the mediapipe wheel into ``folder``: ``wheel`` where given (downloaded
    elsewhere, for a machine without the package index), else the one pip downloads."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as download:
        if wheel is None:
            try:
                subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", download,
                                MEDIAPIPE_WITH_MODEL], check=True)
            except subprocess.CalledProcessError as error:
                raise SystemExit(f"pip could not download {MEDIAPIPE_WITH_MODEL} (is a package index reachable?): "
                                 "download that wheel on another machine and pass it with --wheel") from error
            wheel = next(Path(download).glob("mediapipe-*.whl"))
        try:
            with zipfile.ZipFile(wheel) as archive:
                names = archive.namelist()
                model = archive.read(MODEL_IN_WHEEL) if MODEL_IN_WHEEL in names else None
        except (OSError, zipfile.BadZipFile) as error:
            raise SystemExit(f"{wheel} could not be read as a wheel ({error})") from error
        if model is None:
            raise SystemExit(f"{wheel.name} has no {MODEL_IN_WHEEL}: the wheel of {MEDIAPIPE_WITH_MODEL} has")
        (folder / MODEL_NAME).write_bytes(model)
    return folder / MODEL_NAME


class MeshJudge:
    """Face Mesh's opening and width of a mouth, given the face's box from any detector."""

    def __init__(self, model: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(model), num_threads=1)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]

    def mesh(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """(468, 2) points in ``image``'s pixels for the face in ``box`` (x0, y0, x1, y1) of an RGB uint8 image."""
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        side = CROP_SCALE * max(box[2] - box[0], box[3] - box[1])
        for _ in range(3):
            points = self._in_crop(image, centre, side)
            low, high = points.min(0), points.max(0)
            centre, side = (low + high) / 2, CROP_SCALE * float(max(high - low))
        return points

    def _in_crop(self, image: np.ndarray, centre: np.ndarray, side: float) -> np.ndarray:
        to_crop = crop_transform(centre, side)
        crop = cv2.warpAffine(image, to_crop, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        self._interpreter.set_tensor(self._input, crop[None].astype(np.float32) / 255.0)
        self._interpreter.invoke()
        return from_crop(self._interpreter.get_tensor(self._output).reshape(-1, 3)[:, :2], to_crop)

    def mouth(self, image: np.ndarray, box: tuple[float, float, float, float]) -> tuple[float, float]:
        """(opening, width) of the mouth in ``box``, in eye distances."""
        return mouth_of(self.mesh(image, box))


def crop_transform(centre: np.ndarray, side: float) -> np.ndarray:
    """The (2, 3) affine taking image pixels to the model's input: a square of ``side`` around ``centre``."""
    scale = INPUT_SIZE / side
    offset = INPUT_SIZE / 2 - scale * np.asarray(centre, np.float64)
    return np.array([[scale, 0, offset[0]], [0, scale, offset[1]]], np.float32)


def from_crop(points: np.ndarray, to_crop: np.ndarray) -> np.ndarray:
    """(N, 2) points in the model's input back in the image's pixels (``crop_transform``'s inverse)."""
    return (points - to_crop[:, 2]) / to_crop[0, 0]


def mouth_of(points: np.ndarray) -> tuple[float, float]:
    """(opening, width) of a (468, 2) mesh's mouth, in eye distances."""
    (a, b), (c, d) = EYE_CORNERS
    eyes = float(np.linalg.norm((points[a] + points[b]) / 2 - (points[c] + points[d]) / 2))
    gap = np.mean([np.linalg.norm(points[u] - points[v]) for u, v in INNER_LIP_PAIRS])
    width = np.linalg.norm(points[MOUTH_CORNERS[0]] - points[MOUTH_CORNERS[1]])
    return float(gap) / eyes, float(width) / eyes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fetch", type=Path, required=True, metavar="FOLDER", help="where to put the model")
    parser.add_argument("--wheel", type=Path, help=f"the {MEDIAPIPE_WITH_MODEL} wheel, already downloaded")
    options = parser.parse_args()
    print(fetch_model(options.fetch, options.wheel))


if __name__ == "__main__":
    main()
