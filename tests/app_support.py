"""What the app's tests share: the repository's example photos, a tiny untrained app, and helpers that
serve it and talk to it as a visitor does (the fixtures built on them live in ``conftest.py``)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest
import torch
from gradio_client import Client

from talking_head.config import ModelConfig
from talking_head.limits import Limits
from talking_head.models.talking_head_model import TalkingHeadModel
from talking_head.pipeline import TalkingHeadPipeline
from talking_head_app.handlers import AppSettings, TalkingHeadApp

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
    pipe = TalkingHeadPipeline.from_pretrained(weights, device="cpu", landmark_backend="dlib",
                                               limits=Limits(max_video_seconds=MAX_VIDEO_SECONDS))
    settings = AppSettings(max_steps=5, concurrency=concurrency)
    return TalkingHeadApp(pipe, settings, work_root=tmp_path_factory.mktemp("requests"))


#: Debian's Chromium: the browser tests drive it through Playwright (which cannot download its own here).
CHROMIUM = Path("/usr/bin/chromium")


def browser_test_app(tmp_path_factory: pytest.TempPathFactory, limits: Limits | None = None,
                     settings: AppSettings | None = None) -> TalkingHeadApp:
    """The app a browser test drives: tiny untrained weights, or TALKING_HEAD_APP_TEST_WEIGHTS (for the
    README's screenshot from the shipped checkpoint)."""
    weights = os.environ.get("TALKING_HEAD_APP_TEST_WEIGHTS") or tiny_weights(tmp_path_factory.mktemp("weights"))
    pipe = TalkingHeadPipeline.from_pretrained(weights, device="cpu", landmark_backend="dlib", limits=limits)
    return TalkingHeadApp(pipe, settings or AppSettings(), work_root=tmp_path_factory.mktemp("requests"))


@contextmanager
def served_in_process(app: TalkingHeadApp) -> Iterator[str]:
    """``app``'s page served from this process on a free loopback port: its URL.

    Start it before Playwright: Playwright's sync API leaves an asyncio loop on this thread, and a
    Gradio app launched after that schedules its queue on that loop, where its jobs never run.
    """
    demo = load_app_module().build_demo(app)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@contextmanager
def headless_chromium(*extra_args: str) -> Iterator:
    """Debian's Chromium, headless, under Playwright's sync API (``extra_args``: a fake camera, say)."""
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage", "--mute-audio",
                                                   *extra_args])
        try:
            yield browser
        finally:
            browser.close()


def fake_camera_file(folder: Path, video: Path = EXAMPLES / "driver.mp4") -> Path:
    """``video`` as the raw Y4M file Chromium's fake camera plays in a loop (``fake_camera_args``)."""
    import imageio_ffmpeg

    y4m = folder / f"{video.stem}.y4m"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(video), "-pix_fmt",
                    "yuv420p", str(y4m)], check=True)
    return y4m


def fake_camera_args(y4m: Path) -> tuple[str, ...]:
    """Chromium's flags for a webcam that plays ``y4m``, allowed without asking."""
    return ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={y4m}")


def press_start_on_the_live_example(browser, url: str, timeout_ms: int = 120_000):
    """Open the app at ``url`` in a new browser context, go to the Live tab, load the example avatar and press
    Start; returns the page (what follows, frames or a place in line, is the caller's to wait for)."""
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    page.goto(url)
    page.locator("#live-tab-button").click()
    page.locator("#live-example").click()
    page.wait_for_function("() => document.querySelector('#live-avatar').innerText.includes('astronaut')",
                           timeout=timeout_ms)
    page.locator("#live-start").click()
    return page


def start_live_example(browser, url: str):
    """Open the app at ``url``, go to the Live tab, load the example avatar and start the fake camera's
    stream; returns the page once the measured rate is shown (the browser test and
    benchmarks/bench_live_browser.py start it the same way)."""
    page = press_start_on_the_live_example(browser, url)
    page.wait_for_function("() => /[1-9][0-9.]* frames\\/s/.test(document.querySelector('#live-stats').innerText)",
                           timeout=120_000)
    return page


@contextmanager
def served_app_py(tmp_path: Path, env: dict[str, str], start_seconds: float = 120) -> Iterator[tuple[str, int]]:
    """``python app.py`` in a process of its own on 127.0.0.1 with tiny weights and ``env`` on top:
    yields its URL and process id once it answers, and stops it afterwards."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "HF_HUB_OFFLINE": "1",
           "TALKING_HEAD_CHECKPOINTS": str(tiny_weights(tmp_path / "weights")), "GRADIO_ANALYTICS_ENABLED": "False",
           **env}
    log = tmp_path / "app.log"
    with log.open("w") as output:
        process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=tmp_path, env=env, stdout=output,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + start_seconds
        while True:
            try:
                urllib.request.urlopen(url + "config", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"app.py did not start:\n{log.read_text()}")
                time.sleep(0.5)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def peak_resident_bytes(pid: int) -> int:
    """The most memory the process ``pid`` has held resident so far (Linux's VmHWM)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) * 1024


def visitor(server: str, tmp_path: Path) -> Client:
    return Client(server, verbose=False, download_files=str(tmp_path))


class RecordingProgress:
    """Stands in for gr.Progress: records what the pipeline reports."""

    def __init__(self) -> None:
        self.updates: list[tuple[float, str]] = []

    def __call__(self, fraction: float, desc: str | None = None) -> None:
        self.updates.append((fraction, desc or ""))
