"""The Live tab in a real browser: headless Debian Chromium with a fake webcam playing examples/driver.mp4.

Skipped when Playwright or /usr/bin/chromium is missing (``apt-get install chromium``). Uses a tiny random
model unless ``TALKING_HEAD_APP_TEST_WEIGHTS`` names a checkpoint folder: the texture path's warp moves
the face with the landmarks whatever the generator's weights.
"""

from __future__ import annotations

import base64
import itertools
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from app_support import (
    CHROMIUM,
    browser_test_app,
    fake_camera_args,
    fake_camera_file,
    headless_chromium,
    served_in_process,
    start_live_example,
)

from talking_head.landmarks.detect import get_detector

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_in_process(browser_test_app(tmp_path_factory)) as url:
        yield url


@pytest.fixture(scope="module")
def fake_camera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/driver.mp4 as the raw Y4M file Chromium's fake camera plays (in a loop)."""
    return fake_camera_file(tmp_path_factory.mktemp("camera"))


@pytest.fixture(scope="module")
def browser(server: str, fake_camera: Path) -> Iterator[sync_api.Browser]:
    with headless_chromium(*fake_camera_args(fake_camera)) as browser:  # after the server
        yield browser


def shown_image(page: sync_api.Page) -> tuple[str, np.ndarray]:
    """The output image's source and its pixels (RGB)."""
    source = page.locator("#live-output img").get_attribute("src")
    if source.startswith("data:"):
        data = base64.b64decode(source.split(",", 1)[1])
    else:
        data = page.request.get(source).body()
    return source, cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def image_changes(page: sync_api.Page, seconds: float, pause: float) -> list[float]:
    """When the shown image changed (seconds from now), watched for ``seconds``, and then for up to ``pause``
    seconds more while no image came after ``seconds - 1``: a busy machine (CI's, once) may hold the stream
    for well over a second, while a stopped stream sends nothing more at all."""
    sources, began = [], time.monotonic()
    while (now := time.monotonic() - began) < seconds + pause:
        sources.append((now, page.locator("#live-output img").get_attribute("src")))
        changes = [t for (t, a), (_, b) in itertools.pairwise(sources) if a != b]
        if now >= seconds and changes and changes[-1] > seconds - 1:
            break
        time.sleep(0.1)
    return changes


def test_the_fake_webcam_drives_the_example_avatar(server: str, browser: sync_api.Browser) -> None:
    page = start_live_example(browser, server)
    changes = image_changes(page, seconds=4.5, pause=15)
    # A stream, not a picture: new images over at least 3 s, still coming after 3.5 s (the stream did not stop).
    assert len(changes) >= 5 and changes[-1] - changes[0] >= 3.0 and changes[-1] > 3.5, changes
    rate = float(re.search(r"([\d.]+) frames/s", page.locator("#live-stats").inner_text()).group(1))
    assert rate > 0.5
    _, image = shown_image(page)
    assert image.shape[0] >= 128 and get_detector("dlib").detect(image)  # a face is shown
    if target := os.environ.get("TALKING_HEAD_LIVE_SCREENSHOT"):  # the README's picture of the Live tab
        page.locator("#live-output").scroll_into_view_if_needed()
        page.screenshot(path=target)
    page.context.close()
