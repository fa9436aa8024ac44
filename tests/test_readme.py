"""The README is a front door: short, the two set-up commands near its top, every link to docs/ a page that exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
#: The two set-up commands: run the app, run the tests (what .ci/run runs).
SET_UP = ("pip install -r requirements.txt && python app.py", "pip install -r requirements-test.txt && python -m pytest")
MAX_LINES = 200


def local_links(markdown: str) -> list[str]:
    """The targets of a page's markdown links and pictures that are files of this repository (no URL, no anchor)."""
    targets = re.findall(r"\]\(([^)\s]+)\)", markdown)
    return [target.split("#")[0] for target in targets if not re.match(r"[a-z]+:", target) and target.split("#")[0]]


def test_the_readme_is_at_most_200_lines() -> None:
    assert len(README.splitlines()) <= MAX_LINES


def test_the_two_set_up_commands_are_within_the_first_40_lines() -> None:
    top = "\n".join(README.splitlines()[:40])
    assert all(command in top for command in SET_UP)
    assert "python -m pytest" in (ROOT / ".ci" / "run").read_text()  # the tests' command is CI's


def test_every_link_from_the_readme_to_docs_resolves() -> None:
    links = local_links(README)
    to_docs = [link for link in links if link.startswith("docs/")]
    assert len(to_docs) >= 15  # the pages and pictures the README points to
    assert [link for link in links if not (ROOT / link).exists()] == []


def test_the_link_check_sees_a_missing_page() -> None:
    page = "See [a page](docs/missing.md), [the web](https://example.com) and [a part](docs/cli.md#train)."
    assert local_links(page) == ["docs/missing.md", "docs/cli.md"]
    assert not (ROOT / "docs" / "missing.md").exists()
