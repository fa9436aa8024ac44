"""What a user of the package sees: the public API at the top level, a light ``import talking_head``, and a
library that never needs the app's gradio."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The app's dependencies: only app.py and talking_head_app/ import them.
APP_ONLY = ("gradio", "spaces")


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_the_public_api_is_importable_from_the_package() -> None:
    import importlib

    import talking_head
    from talking_head import Avatar, FinetuneConfig, ModelConfig, RenderConfig, TalkingHeadPipeline

    exported = {"TalkingHeadPipeline": TalkingHeadPipeline, "Avatar": Avatar, "RenderConfig": RenderConfig,
                "FinetuneConfig": FinetuneConfig, "ModelConfig": ModelConfig}
    assert sorted(talking_head.__all__) == sorted(exported) and set(exported) <= set(dir(talking_head))
    for name, value in exported.items():  # the very classes of the modules that define them
        assert getattr(importlib.import_module(value.__module__), name) is value
    assert TalkingHeadPipeline.__module__ == "talking_head.pipeline"


def test_import_talking_head_loads_no_torch_until_a_name_is_used() -> None:
    loaded = run_python("import sys, talking_head; print('torch' in sys.modules, 'gradio' in sys.modules); "
                        "talking_head.ModelConfig; print('torch' in sys.modules)")
    assert loaded.split() == ["False", "False", "False"]  # ModelConfig is a plain dataclass


def test_a_command_imports_its_own_module_not_every_other_commands() -> None:
    loaded = run_python(
        "import sys\nfrom talking_head.cli import main\n"
        "try:\n    main(['animate', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(*(name in sys.modules for name in ('talking_head.commands.animate', 'talking_head.evaluate',"
        " 'talking_head.train', 'talking_head.commands.live')))")
    assert loaded.split()[-4:] == ["True", "False", "False", "False"]


def test_no_module_of_the_library_imports_gradio_or_spaces() -> None:
    """Every module of ``talking_head`` (the pipeline, the CLI and each command with them) imports without
    the app's dependencies: the UI lives in talking_head_app/, beside app.py."""
    loaded = run_python(
        "import importlib, pkgutil, sys, talking_head\n"
        "for module in pkgutil.walk_packages(talking_head.__path__, 'talking_head.'):\n"
        "    if not module.name.endswith('__main__'):  # that one runs the CLI\n"
        "        importlib.import_module(module.name)\n"
        "import talking_head.cli; talking_head.cli.build_parser()\n"
        f"print(sorted(name for name in sys.modules if name.split('.')[0] in {APP_ONLY!r}))")
    assert loaded.strip() == "[]"


def test_gradio_and_spaces_are_the_app_extra_not_dependencies_of_the_package() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not _names(project["dependencies"]) & set(APP_ONLY)
    assert _names(project["optional-dependencies"]["app"]) == set(APP_ONLY)


def _names(requirements: list[str]) -> set[str]:
    """``["gradio>=5.0"]`` -> ``{"gradio"}``."""
    return {re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0] for requirement in requirements}
