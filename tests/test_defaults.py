"""Defaults written once: a second copy of a number drifts from the first the day one of them changes."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def numbers_on_lines_mentioning(word: str, number: str, path: Path) -> list[str]:
    """``path:line`` of every code token ``number`` (comments and strings are not code) on a line with ``word``."""
    source = path.read_text()
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [f"{path.relative_to(ROOT)}:{token.start[0]}" for token in tokens
            if token.type == tokenize.NUMBER and token.string == number and word in token.line]


def test_the_default_number_of_fine_tuning_steps_is_written_once() -> None:
    files = [*(ROOT / "talking_head").rglob("*.py"), ROOT / "app.py", *(ROOT / "benchmarks").glob("*.py")]
    found = [hit for path in sorted(files) for hit in numbers_on_lines_mentioning("steps", "40", path)]
    assert len(found) == 1 and found[0].startswith("talking_head/finetune.py:"), found  # FinetuneConfig.steps
