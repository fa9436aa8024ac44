"""The app in a real browser (headless Debian Chromium through Playwright): what a visitor clicks.

Skipped when Playwright or /usr/bin/chromium is missing (``apt-get install chromium``; ``pip install
playwright``; ``playwright install`` is not needed). Uses a tiny random model unless
``TALKING_HEAD_APP_TEST_WEIGHTS`` names a checkpoint folder; ``TALKING_HEAD_APP_SCREENSHOT=path.png``
also saves the screenshot there (how docs/app_screenshot.png is made).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from app_support import CHROMIUM, EXAMPLES, browser_test_app, headless_chromium, served_in_process
from PIL import Image
from skimage import data

from talking_head.limits import Limits
from talking_head_app.handlers import AppSettings

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = AppSettings(max_steps=int(os.environ.get("TALKING_HEAD_MAX_STEPS", "3")))
    with served_in_process(browser_test_app(tmp_path_factory, Limits(max_video_seconds=5), settings)) as url:
        yield url


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[sync_api.Browser]:
    with headless_chromium() as browser:  # after the server (see served_in_process)
        yield browser


@pytest.fixture
def page(server: str, browser: sync_api.Browser) -> Iterator[sync_api.Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.goto(server)
    page.wait_for_selector("#gen-btn")
    yield page
    context.close()


def test_example_then_generate_plays_the_result_video(page: sync_api.Page, tmp_path: Path) -> None:
    page.locator('[data-testid="dataset-cell-0-0"]').first.click()
    # Wait until the example has filled the inputs (it loads its files asynchronously).
    page.wait_for_function("() => document.querySelector('#photos').innerText.includes('person_3')")
    page.locator("#driver video").wait_for()
    page.locator("#gen-btn").click()
    video = page.locator("#result-video video")
    video.wait_for(timeout=180_000)
    assert page.wait_for_function(
        "() => { const v = document.querySelector('#result-video video'); return v && v.readyState >= 1 "
        "&& v.duration > 3.5 ? v.duration : null; }", timeout=60_000).json_value() == pytest.approx(4.0, abs=0.2)
    assert page.locator("#overlays img").count() == 3  # one landmark overlay per example photo
    assert "rendering 100 frames" in page.locator("#notes").inner_text()
    assert page.locator('#avatar-file a[href*="avatar.safetensors"]').count() == 1  # a download link
    page.locator("#result-video").scroll_into_view_if_needed()
    shot = tmp_path / "app.png"
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] == 1280
    if target := os.environ.get("TALKING_HEAD_APP_SCREENSHOT"):
        shutil.copyfile(shot, target)


def test_a_photo_without_a_face_shows_a_clear_error_toast(page: sync_api.Page, tmp_path: Path) -> None:
    coffee = tmp_path / "coffee.jpg"
    Image.fromarray(data.coffee()).save(coffee)
    page.locator('#photos input[type="file"]').set_input_files(str(coffee))
    page.locator('#driver input[type="file"]').set_input_files(str(EXAMPLES / "driver.mp4"))
    page.locator("#driver video").wait_for(timeout=30_000)  # the upload has landed
    page.locator("#gen-btn").click()
    toast = page.locator('[data-testid="toast-text"]')
    toast.first.wait_for(timeout=60_000)
    assert "coffee.jpg: no face found" in toast.first.inner_text()


def test_the_face_picker_appears_for_a_photo_of_two_and_hides_for_one(page: sync_api.Page, tmp_path: Path) -> None:
    pair, alone = tmp_path / "pair.png", tmp_path / "alone.png"
    Image.fromarray(np.concatenate([data.astronaut(), data.astronaut()[:, ::-1]], axis=1)).save(pair)
    Image.fromarray(data.astronaut()).save(alone)
    assert not page.locator("#faces").is_visible() and not page.locator("#face").is_visible()
    page.locator('#photos input[type="file"]').set_input_files(str(pair))
    page.locator("#faces img").nth(1).wait_for(timeout=60_000)  # both faces, numbered
    assert page.locator("#faces img").count() == 2 and page.locator("#face").is_visible()
    page.locator('#photos button[aria-label="Clear"]').first.click()
    page.locator('#photos input[type="file"]').set_input_files(str(alone))
    page.locator("#face").wait_for(state="hidden", timeout=60_000)
    assert not page.locator("#faces").is_visible()
