"""A clip of yourself in the app, in a real browser (headless Debian Chromium through Playwright, issue 27
acceptance 2): the clip uploaded as the photos, its 8 chosen shots shown before anything is rendered, a result
video, then *Compare shots* from the same clip, measured on its second half; and a clip recorded with the webcam
(Chromium's fake camera playing examples/driver.mp4).

Skipped as ``test_app_browser.py`` is. Uses a tiny random model unless ``TALKING_HEAD_APP_TEST_WEIGHTS`` names a
checkpoint folder; ``TALKING_HEAD_APP_CLIP_SCREENSHOTS=docs`` also saves ``app_clip.png`` (the Animate tab) and
``app_clip_compare.png`` (Compare shots) there (how the docs' pictures are made).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_support import (
    CHROMIUM,
    EXAMPLES,
    browser_test_app,
    fake_camera_args,
    fake_camera_file,
    headless_chromium,
    served_in_process,
)
from PIL import Image

from talking_head.clip_shots import ClipShotsConfig
from talking_head.data.demo import write_driver_video
from talking_head.limits import Limits
from talking_head_app.handlers import AppSettings

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")]

#: 0.96 s at 25 fps: its first half (12 frames) gives fewer than 32 distinct shots (10, still more than 8: three
#: Ks), so Compare says so and caps K. Compare scores every frame of the second half (dlib on each rendering):
#: 24 frames rather than 40 measured it in 14 s rather than 21 (2-core Xeon), and test_app_clip.py's clip is 24 too.
CLIP_FRAMES = 24


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = browser_test_app(tmp_path_factory, Limits(max_video_seconds=5), AppSettings(max_steps=3))
    with served_in_process(app) as url:
        yield url


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic person talking and turning a little, as a visitor records themselves (256 px, no sound)."""
    return write_driver_video(tmp_path_factory.mktemp("clip") / "me.mp4", identity_id=7, num_frames=CLIP_FRAMES,
                              image_size=256, with_audio=False)


def screenshot(page: sync_api.Page, folder: Path, name: str) -> None:
    """The whole page as ``name`` in ``folder``, and in TALKING_HEAD_APP_CLIP_SCREENSHOTS when it is set."""
    shot = folder / name
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] == 1280
    if target := os.environ.get("TALKING_HEAD_APP_CLIP_SCREENSHOTS"):
        shutil.copyfile(shot, Path(target) / name)


def test_a_clip_as_the_photos_then_compare_shots_from_the_same_clip(server: str, clip: Path, tmp_path: Path) -> None:
    with headless_chromium() as browser:  # after the server (see served_in_process)
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        page.goto(server)
        page.locator('#clip input[type="file"]').set_input_files(str(clip))
        # The chosen shots appear before anything is rendered: one thumbnail each, with when and why.
        shots = ClipShotsConfig().shots
        page.wait_for_function(f"() => document.querySelectorAll('#overlays img').length === {shots}",
                               timeout=120_000)
        assert "widest mouth opening" in page.locator("#overlays").inner_text()
        assert f"8 shots from {CLIP_FRAMES} frames" in page.locator("#notes").inner_text()
        assert page.locator("#result-video video").count() == 0  # nothing rendered yet

        page.locator('#driver input[type="file"]').set_input_files(str(EXAMPLES / "driver.mp4"))
        page.locator("#driver video").wait_for(timeout=30_000)
        page.locator("#gen-btn").click()
        page.locator("#result-video video").wait_for(timeout=300_000)
        page.wait_for_function("() => document.querySelector('#notes').innerText.includes('rendering 100 frames')",
                               timeout=60_000)
        assert page.locator("#overlays img").count() == shots
        page.locator("#overlays").scroll_into_view_if_needed()
        screenshot(page, tmp_path, "app_clip.png")

        page.get_by_role("tab", name="Compare shots").click()
        page.locator('#cmp-clip input[type="file"]').set_input_files(str(clip))
        page.locator("#cmp-clip video").wait_for(timeout=30_000)
        page.locator("#cmp-btn").click()  # no driving video: the clip drives itself
        page.locator("#cmp-video video").wait_for(timeout=600_000)
        table = page.locator("#cmp-table")
        page.wait_for_function("() => document.querySelector('#cmp-table').innerText.includes('second half')",
                               timeout=60_000)
        text = table.inner_text()
        assert "so K is capped at" in text and "measured on" in text
        assert text.count("feed-forward") == 3 * 3  # K = 1, 8 and the cap: warp, model and their difference each
        page.locator("#cmp-video").scroll_into_view_if_needed()
        screenshot(page, tmp_path, "app_clip_compare.png")


def test_a_webcam_recording_of_yourself_gives_its_shots(server: str, tmp_path: Path) -> None:
    with headless_chromium(*fake_camera_args(fake_camera_file(tmp_path))) as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        page.goto(server)
        page.locator('#clip button[aria-label="Capture from camera"]').click()
        page.locator("#clip button", has_text="Access Webcam").click()
        record = page.locator('#clip button[aria-label="start recording"]')
        record.click()
        page.wait_for_timeout(3000)  # 3 s of the camera's talking face
        record.click()  # stops: the recording is uploaded (a WebM without a duration) and its shots chosen
        page.wait_for_function("() => document.querySelectorAll('#overlays img').length === 8", timeout=120_000)
        notes = page.locator("#notes").inner_text()
        assert "widest mouth opening" in notes and re.search(r"\.webm: 8 shots from \d+ frames", notes), notes
