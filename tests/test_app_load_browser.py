"""The Live tab's one slot in a real browser (headless Debian Chromium, the fake webcam of
tests/test_live_browser.py): a second visitor is told they wait and their place, and streams once the first
visitor leaves. Skipped without Playwright or /usr/bin/chromium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from app_support import (CHROMIUM, browser_test_app, press_start_on_the_live_example, served_in_process,
                         start_live_example)
from test_live_browser import browser, fake_camera  # noqa: F401  (fixtures: the browser runs on this module's server)

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app with one live slot, and a stream ending after 3 s without a frame."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TALKING_HEAD_LIVE_STREAMS", "1")
        patch.setenv("TALKING_HEAD_LIVE_IDLE_SECONDS", "3")
        with served_in_process(browser_test_app(tmp_path_factory)) as url:
            yield url


def test_a_second_visitor_is_told_their_place_and_streams_once_the_first_leaves(
        server: str, browser: sync_api.Browser) -> None:  # noqa: F811  (the fixture imported above)
    first = start_live_example(browser, server)  # streaming: the only slot is taken
    second = press_start_on_the_live_example(browser, server, timeout_ms=60_000)
    second.wait_for_function("() => document.querySelector('#live-stats').innerText.includes('in line')",
                             timeout=30_000)
    assert "Every live slot (1) is in use: yours is number 1 in line" in second.locator("#live-stats").inner_text()
    first.context.close()  # the first visitor leaves: their stream ends, the slot passes on
    second.wait_for_function("() => /[1-9][0-9.]* frames\\/s/.test(document.querySelector('#live-stats').innerText)",
                             timeout=30_000)
    second.context.close()
