"""What a user of the package sees: the public API at the top level, and a light ``import talking_head``."""

from __future__ import annotations

import subprocess
import sys


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
