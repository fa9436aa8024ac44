"""Shared fixtures: tiny models on CPU, deterministic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# One thread: the tests' tensors are tiny, and on a 2-core machine shared with other jobs two torch
# threads wait on each other (measured: tiny-model steps up to 40x slower).
torch.set_num_threads(1)

from app_support import MAX_VIDEO_SECONDS, build_tiny_app, free_port, load_app_module, served_app_py
from app_support import tiny_weights as save_tiny_weights

from talking_head.config import ModelConfig
from talking_head.models.talking_head_model import TalkingHeadModel
from talking_head_app.handlers import TalkingHeadApp


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Back to one torch thread after each test: a command run without ``--threads`` (``live``'s default is 2)
    sets the whole process's count, and every later test's tiny model then ran up to 30x slower (measured:
    tests/test_mouth_window.py's fine-tuning 2.5 s alone, 33 s after tests/test_live.py)."""
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Graphs exported for ONNX Runtime (talking_head.onnx_backend) go to the session's folder, not the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TALKING_HEAD_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture
def tiny_config() -> ModelConfig:
    return ModelConfig.named("tiny", num_videos=4)


@pytest.fixture
def tiny_model(tiny_config: ModelConfig) -> TalkingHeadModel:
    torch.manual_seed(0)
    return TalkingHeadModel(tiny_config).eval()


@pytest.fixture(scope="session")
def astronaut():
    """scikit-image's astronaut: the real photo the landmark tests use (a module may override it)."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def face_landmarks(astronaut):
    """dlib's 68 points on the astronaut, float64: the detector's points are sub-pixel float32 (fitted on an
    upsampled crop), and the crop's and the smoothers' arithmetic is float64."""
    import numpy as np

    from talking_head.landmarks import detect_face, get_detector

    return detect_face(astronaut, get_detector("dlib")).landmarks.astype(np.float64)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory):
    """A checkpoint folder of an untrained tiny model (seeded)."""
    return save_tiny_weights(tmp_path_factory.mktemp("tiny_weights"))


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory):
    """A small synthetic dataset (8 identities x 2 videos x 12 frames at 48 px), rendered once per session."""
    from talking_head.data.synthetic import SyntheticConfig, generate_dataset

    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root, num_identities=8, videos_per_identity=2,
                     config=SyntheticConfig(image_size=48, frames_per_video=12, heldout_fraction=0.25), progress=False)
    return root


@pytest.fixture(scope="session")
def synthetic_photos(tmp_path_factory: pytest.TempPathFactory) -> list:
    """Three PNG photos of one synthetic person (256 px), as a user would upload them."""
    from PIL import Image

    from talking_head.data.synthetic import render_video

    folder = tmp_path_factory.mktemp("photos")
    frames, _ = render_video(5, 0, 9, 256)
    paths = []
    for i in (0, 4, 8):
        paths.append(folder / f"photo{i}.png")
        Image.fromarray(frames[i]).save(paths[-1])
    return paths


@pytest.fixture(scope="session")
def driver_video(tmp_path_factory: pytest.TempPathFactory):
    """A 30-frame, 25 fps synthetic driving video with a sound track."""
    from talking_head.data.demo import write_driver_video

    return write_driver_video(tmp_path_factory.mktemp("driver") / "driver.mp4", identity_id=2, num_frames=30,
                              image_size=160)


@pytest.fixture(scope="session")
def trained_tiny(tiny_dataset, tmp_path_factory: pytest.TempPathFactory):
    """A tiny model meta-trained for 120 steps on the tiny dataset (a checkpoint folder)."""
    from talking_head.train import TrainOptions, train

    out = tmp_path_factory.mktemp("trained_tiny")
    return train(TrainOptions(data=str(tiny_dataset), out=str(out), size="tiny", k_shots=4, batch_size=4, steps=120,
                              lr_generator=1e-3, lr_discriminator=1e-3, eval_every=1000, save_every=1000,
                              threads=1))


# The app, served on 127.0.0.1 (one per test module; a module may override tiny_app).

@pytest.fixture(scope="module")
def tiny_app(tmp_path_factory: pytest.TempPathFactory) -> TalkingHeadApp:
    return build_tiny_app(tmp_path_factory, concurrency=2)


@pytest.fixture(scope="module")
def server(tiny_app: TalkingHeadApp) -> Iterator[str]:
    demo = load_app_module().build_demo(tiny_app)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="session")
def app_py(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Path]]:
    """``python app.py`` in a process of its own (tiny weights, drivers up to 3 s, at most 5 fine-tuning steps):
    (its URL, its process id, its log). One for the session: it takes 8-9 s to start (2-core Xeon), and
    tests/test_app.py reads its page and log while tests/test_bad_inputs.py sends it every bad input."""
    folder = tmp_path_factory.mktemp("app_py")
    env = {"TALKING_HEAD_MAX_VIDEO_SECONDS": f"{MAX_VIDEO_SECONDS:g}", "TALKING_HEAD_MAX_STEPS": "5"}
    with served_app_py(folder, env) as (url, pid):
        yield url, pid, folder / "app.log"
