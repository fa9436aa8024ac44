"""What the app's tests share: the repository's example photos, a tiny untrained app, and helpers that
serve it and talk to it as a visitor does (the fixtures built on them live in ``conftest.py``)."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from types import ModuleType

import pytest
import torch
from gradio_client import Client

from talking_head.app_logic import AppSettings, TalkingHeadApp
from talking_head.config import ModelConfig
from talking_head.hub import TalkingHeadModel
from talking_head.pipeline import TalkingHeadPipeline

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PERSON = [EXAMPLES / f"person_{i}.jpg" for i in (1, 2, 3)]
ASTRONAUT = EXAMPLES / "astronaut.jpg"
#: The test servers accept drivers up to this long: the conftest driver (1.2 s) passes, the 4 s example fails.
MAX_VIDEO_SECONDS = 3.0


def load_app_module() -> ModuleType:
    """``app.py`` from the repository root (not a package module, so imported by path)."""
    spec = importlib.util.spec_from_file_location("talking_head_space_app", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_weights(folder: Path) -> Path:
    torch.manual_seed(0)
    TalkingHeadModel(ModelConfig.named("tiny")).save_pretrained(folder)
    return folder


def build_tiny_app(tmp_path_factory: pytest.TempPathFactory, concurrency: int) -> TalkingHeadApp:
    """The app around an untrained tiny model, serving ``concurrency`` requests at once."""
    weights = tiny_weights(tmp_path_factory.mktemp("weights"))
    pipe = TalkingHeadPipeline.from_pretrained(weights, device="cpu", landmark_backend="dlib")
    settings = AppSettings(max_steps=5, max_video_seconds=MAX_VIDEO_SECONDS, concurrency=concurrency)
    return TalkingHeadApp(pipe, settings, work_root=tmp_path_factory.mktemp("requests"))


def visitor(server: str, tmp_path: Path) -> Client:
    return Client(server, verbose=False, download_files=str(tmp_path))


class RecordingProgress:
    """Stands in for gr.Progress: records what the pipeline reports."""

    def __init__(self) -> None:
        self.updates: list[tuple[float, str]] = []

    def __call__(self, fraction: float, desc: str | None = None) -> None:
        self.updates.append((fraction, desc or ""))
