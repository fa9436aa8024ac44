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
    for meta_learning in ("train.py", "mouth_training.py"):  # their ``steps`` are meta-learning's, not fine-tuning's
        files.remove(ROOT / "talking_head" / meta_learning)
    found = [hit for path in sorted(files) for hit in literal_step_defaults(path)]
    assert len(found) == 1 and found[0].startswith("talking_head/finetune.py:"), found  # FinetuneConfig.steps


# ---------------------------------------------------------------------------------------------------
# Every user-facing default against its one source
# ---------------------------------------------------------------------------------------------------

#: Where the library, the app and the benchmarks are written.
CODE = [*sorted((ROOT / "talking_head").rglob("*.py")), *sorted((ROOT / "talking_head_app").rglob("*.py")),
        ROOT / "app.py", *sorted((ROOT / "benchmarks").glob("*.py"))]


def string_literals(value: str) -> list[str]:
    """``path:line`` of every string literal in the code that is exactly ``value`` (docstrings and comments are
    not: they are longer, or not code)."""
    hits = []
    for path in CODE:
        for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            if token.type == tokenize.STRING and token.string.strip("'\"") == value and len(token.string) == len(
                    value) + 2:
                hits.append(f"{path.relative_to(ROOT)}:{token.start[0]}")
    return hits


def number_sequences(numbers: tuple[int, ...]) -> list[str]:
    """``path:line`` of every place the code writes ``numbers`` one after the other (``(1, 8, 32)``,
    ``[1, 8, 32]``)."""
    hits = []
    for path in CODE:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
                  if t.type in (tokenize.NUMBER, tokenize.OP) and t.string != ","]
        for i in range(len(tokens) - len(numbers) + 1):
            if all(t.type == tokenize.NUMBER and t.string == str(n) for t, n in zip(tokens[i:], numbers)):
                hits.append(f"{path.relative_to(ROOT)}:{tokens[i].start[0]}")
    return hits


def test_the_retargeting_mode_the_mark_corner_and_the_ks_are_each_written_once() -> None:
    assert string_literals("relative") == ["talking_head/landmarks/align.py:" + str(_line_of(
        ROOT / "talking_head/landmarks/align.py", "RETARGET_MODES = ("))]
    assert [hit.split(":")[0] for hit in string_literals("bottom-right")] == ["talking_head/watermark.py"]
    assert [hit.split(":")[0] for hit in number_sequences((1, 8, 32))] == ["talking_head/config.py"]
    assert string_literals("1, 8, 32") == []  # the text is made from PAPER_KS (ks_text)


def _line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_live_mode_the_app_and_the_cli_take_their_render_defaults_from_render_config() -> None:
    import argparse
    import inspect

    from talking_head.commands.common import add_model_and_render_arguments
    from talking_head.landmarks.align import RETARGET_MODES, Retargeter
    from talking_head.live import LiveConfig
    from talking_head.render import DEFAULT_OUTPUT_SIZE, RenderConfig
    from talking_head.watermark import POSITIONS, stamp_synthetic
    from talking_head_app.handlers import AUTO_OUTPUT_SIZE, TalkingHeadApp, _render_config, output_size_choices

    render = RenderConfig()
    assert (render.output_size, render.retarget, render.mark_position) == (None, RETARGET_MODES[0], POSITIONS[0])
    assert DEFAULT_OUTPUT_SIZE == 256  # an unset output size: render.output_height, the one place it is resolved
    live = LiveConfig()
    assert (live.output_size, live.retarget, live.mark_position) == (DEFAULT_OUTPUT_SIZE, render.retarget,
                                                                     render.mark_position)
    for handler in (TalkingHeadApp.generate, TalkingHeadApp.animate_avatar):
        defaults = {name: p.default for name, p in inspect.signature(handler).parameters.items()}
        for name in ("retarget", "paste_back", "side_by_side", "output_size", "mark_position", "generator"):
            assert defaults[name] == getattr(render, name), (handler.__name__, name)
    assert output_size_choices(1024)[1] == DEFAULT_OUTPUT_SIZE
    assert _render_config(render.retarget, True, False, AUTO_OUTPUT_SIZE, render.mark_position).output_size is None
    parser = argparse.ArgumentParser()
    add_model_and_render_arguments(parser)
    flags = vars(parser.parse_args([]))
    assert (flags["output_size"], flags["retarget"], flags["mark_position"]) == (render.output_size, render.retarget,
                                                                                 render.mark_position)
    assert inspect.signature(Retargeter).parameters["mode"].default == render.retarget
    assert inspect.signature(stamp_synthetic).parameters["position"].default == render.mark_position


def test_compare_and_evaluate_run_the_papers_ks_everywhere() -> None:
    import inspect

    from talking_head import cli
    from talking_head.config import PAPER_KS, ks_text
    from talking_head.evaluate import EvaluateOptions
    from talking_head.pipeline import TalkingHeadPipeline
    from talking_head_app.handlers import TalkingHeadApp, parse_ks

    assert PAPER_KS == (1, 8, 32) and ks_text() == "1, 8, 32"
    assert tuple(EvaluateOptions().ks) == PAPER_KS
    assert tuple(inspect.signature(TalkingHeadPipeline.compare).parameters["ks"].default) == PAPER_KS
    app_default = inspect.signature(TalkingHeadApp.compare).parameters["ks"].default
    assert tuple(parse_ks(app_default, 4, 32)) == PAPER_KS
    compare = cli.build_parser(["compare"]).parse_args(["compare", "--photos", "a.jpg", "--driver", "d.mp4"])
    assert tuple(compare.ks) == PAPER_KS
    for command in ("compare", "evaluate"):
        assert cli.COMMANDS[command][1].startswith("K = 1/8/32 ")
    assert "(default 1, 8, 32)" in (ROOT / "README.md").read_text()
    assert "K = 1/8/32 side by side" in (ROOT / "docs" / "cli.md").read_text()


def test_the_number_of_photos_a_person_may_bring_is_the_shot_limits(monkeypatch) -> None:
    import re

    from talking_head.commands.common import photos_help
    from talking_head.limits import Limits

    assert photos_help().startswith(f"1 to {Limits.max_shots} photos")
    monkeypatch.setenv("TALKING_HEAD_MAX_SHOTS", "12")
    assert photos_help().startswith("1 to 12 photos")
    readme = (ROOT / "README.md").read_text()
    assert set(re.findall(r"(?:1|one) to (\d+) photos", readme)) == {str(Limits.max_shots)}
    app = (ROOT / "app.py").read_text()
    assert "{max_shots}" in app and not re.search(r"\b32 photos|to 32\b", app)


def test_the_app_sweeps_files_as_often_as_its_settings_say() -> None:
    from talking_head_app.handlers import AppSettings

    settings = AppSettings(file_ttl_seconds=1000)
    assert settings.sweep_seconds == 250
    app = (ROOT / "app.py").read_text()
    assert "delete_cache=(settings.sweep_seconds, settings.file_ttl_seconds)" in app
    assert "// 4" not in app  # the interval is AppSettings.sweep_seconds', not computed again
