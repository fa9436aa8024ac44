"""What `pip install .` gives a user: the package with its bundled checkpoint, usable from any folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What the build reads (pyproject's packages, readme and package data), copied so that building writes no
#: build/ or egg-info into the working tree.
BUILD_INPUTS = ("pyproject.toml", "README.md", "checkpoints", "talking_head")

LOAD_THE_DEFAULT = """
import json, talking_head
from talking_head.hub import load_model
loaded = load_model()
print(json.dumps({"package": talking_head.__file__, "origin": loaded.origin, "location": loaded.location,
                  "label": loaded.label}))
"""


def source_copy(folder: Path) -> Path:
    folder.mkdir()
    for name in BUILD_INPUTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, folder / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, folder / name)
    return folder


@pytest.mark.slow
def test_a_plain_pip_install_loads_the_bundled_checkpoint_from_another_folder(tmp_path: Path) -> None:
    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source_copy(tmp_path / "src"))], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TALKING_HEAD_", "PYTHON"))}
    env.update(PYTHONPATH=str(target), HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "empty-cache"))
    child = subprocess.run([sys.executable, "-c", LOAD_THE_DEFAULT], cwd=elsewhere, env=env, capture_output=True,
                           text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    loaded = json.loads(child.stdout.splitlines()[-1])
    assert Path(loaded["package"]).is_relative_to(target)  # the installed copy, not this checkout
    assert loaded["origin"] == "bundled" and Path(loaded["location"]).is_relative_to(target)
    assert loaded["label"] == "bundled: small checkpoint"
    assert not (target / "talking_head" / "checkpoints").is_symlink()  # real files inside the package
