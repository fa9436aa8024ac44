"""The *Speak* tab in a real browser (headless Debian Chromium through Playwright): the example photo is there, a
voice file is uploaded, *Speak* gives a video as long as the voice. Skipped without Playwright or chromium.

Uses a tiny random model unless ``TALKING_HEAD_APP_TEST_WEIGHTS`` names a checkpoint folder;
``TALKING_HEAD_SPEAK_SCREENSHOT=docs/app_speak.png`` also saves the screenshot there (the README's).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_support import CHROMIUM, browser_test_app, headless_chromium, served_in_process
from PIL import Image
from speech_support import syllables, write_wav

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_in_process(browser_test_app(tmp_path_factory)) as url:
        yield url


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[sync_api.Browser]:
    with headless_chromium() as browser:  # after the server (see served_in_process)
        yield browser


def test_upload_a_voice_and_the_photo_speaks_it(server: str, browser: sync_api.Browser, tmp_path: Path) -> None:
    voice = write_wav(tmp_path / "voice.wav", syllables(5)[0])  # 2 s
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.goto(server)
    page.get_by_role("tab", name="Speak").click()
    page.wait_for_function("() => document.querySelector('#speak-photos').innerText.includes('astronaut')")
    page.locator('#speak-audio input[type="file"]').set_input_files(str(voice))
    page.locator("#speak-audio audio").first.wait_for(state="attached", timeout=30_000)  # the upload has landed
    page.locator("#speak-btn").click()
    page.locator("#speak-video video").wait_for(timeout=180_000)
    duration = page.wait_for_function(
        "() => { const v = document.querySelector('#speak-video video'); return v && v.readyState >= 1 "
        "&& v.duration > 1 ? v.duration : null; }", timeout=60_000).json_value()
    assert duration == pytest.approx(2.0, abs=0.2)
    assert "50 frames at 25 fps" in page.locator("#speak-notes").inner_text()
    shot = tmp_path / "speak.png"
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] == 1280
    if target := os.environ.get("TALKING_HEAD_SPEAK_SCREENSHOT"):
        shutil.copyfile(shot, target)
    context.close()
