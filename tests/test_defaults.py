"""Defaults written once: a second copy of a number drifts from the first the day one of them changes."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def literal_step_defaults(path: Path) -> list[str]:
    """``path:line`` of every ``steps ... = option(<number>`` field and ``"--steps", ..., default=<number>`` flag
    in the code of ``path`` (comments and strings are not code)."""
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
              if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)]
    hits = []
    for i, token in enumerate(tokens):
        before = [t.string for t in tokens[max(0, i - 2):i]]
        field = before == ["option", "("] and token.line.lstrip().startswith("steps")
        flag = before == ["default", "="] and '"--steps"' in token.line
        if token.type == tokenize.NUMBER and (field or flag):
            hits.append(f"{path.relative_to(ROOT)}:{token.start[0]}")
    return hits


def test_the_default_number_of_fine_tuning_steps_is_written_once() -> None:
    files = [*(ROOT / "talking_head").rglob("*.py"), ROOT / "app.py", *(ROOT / "benchmarks").glob("*.py")]
    files.remove(ROOT / "talking_head" / "train.py")  # its ``steps`` are meta-learning's, not fine-tuning's
    found = [hit for path in sorted(files) for hit in literal_step_defaults(path)]
    assert len(found) == 1 and found[0].startswith("talking_head/finetune.py:"), found  # FinetuneConfig.steps
