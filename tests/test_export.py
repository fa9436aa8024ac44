"""Exporting a training checkpoint: half-precision weights that load into float32, card kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from talking_head.export import ExportOptions, absolute_paths, export
from talking_head.models.talking_head_model import TalkingHeadModel


def test_export_halves_the_weights_keeps_the_card_and_reports_the_cost(tiny_model: TalkingHeadModel,
                                                                        tmp_path: Path) -> None:
    tiny_model.save_pretrained(tmp_path / "run")
    (tmp_path / "ship").mkdir()
    (tmp_path / "ship" / "README.md").write_text("# our model card\n")
    out, error = export(ExportOptions(checkpoint=str(tmp_path / "run"), out=str(tmp_path / "ship")))
    assert (out / "README.md").read_text() == "# our model card\n"
    size = lambda d: sum(p.stat().st_size for p in d.glob("*.safetensors"))  # noqa: E731
    assert size(out) < 0.6 * size(tmp_path / "run")
    loaded = TalkingHeadModel.from_pretrained(out)
    assert next(loaded.parameters()).dtype == torch.float32
    assert 0 < error < 1e-2  # half precision changes G's output, by less than a 1/100 of the range


def test_export_of_a_training_checkpoint_records_its_step(trained_tiny: Path, tmp_path: Path) -> None:
    out, _ = export(ExportOptions(checkpoint=str(trained_tiny), out=str(tmp_path / "ship")))
    assert TalkingHeadModel.from_pretrained(out).provenance["step"] == 120


def test_an_export_records_no_path_of_the_machine_that_trained_it(trained_tiny: Path, tmp_path: Path) -> None:
    """config.json is shared (shipped, pushed to the Hub): its provenance names the run and data folders, never
    where they lay."""
    out, _ = export(ExportOptions(checkpoint=str(trained_tiny), out=str(tmp_path / "ship")))
    provenance = TalkingHeadModel.from_pretrained(out).provenance
    assert str(tmp_path) not in (out / "config.json").read_text()
    assert provenance["options"]["out"] == Path(provenance["options"]["out"]).name  # the run folder's name alone
    assert not Path(provenance["data"]).is_absolute()
    shipped = (Path(__file__).resolve().parents[1] / "checkpoints" / "config.json").read_text()
    assert '"/' not in shipped  # the bundled checkpoint's too


def test_export_refuses_a_config_that_would_still_record_a_path(tiny_model: TalkingHeadModel, tmp_path: Path) -> None:
    """A path inside a longer string (a command line) is not cut by ``without_paths``: the export refuses it rather
    than ship it, and writes nothing."""
    tiny_model.provenance = {"command": "train --data /home/me/voxceleb --out runs/x", "notes": ["copied from C:\\runs\\x"]}
    tiny_model.save_pretrained(tmp_path / "run")
    with pytest.raises(ValueError, match="refusing to export") as refused:
        export(ExportOptions(checkpoint=str(tmp_path / "run"), out=str(tmp_path / "ship")))
    assert "/home/me/voxceleb" in str(refused.value) and "C:\\runs\\x" in str(refused.value)
    assert not (tmp_path / "ship").exists()
    assert absolute_paths({"a": ["runs/x", "x=/tmp/y"], "b": 3}) == ["/tmp/y"]
    tiny_model.provenance = {"command": "train --data data/voxceleb --out runs/x"}  # relative: fine
    tiny_model.save_pretrained(tmp_path / "relative")
    out, _ = export(ExportOptions(checkpoint=str(tmp_path / "relative"), out=str(tmp_path / "ship")))
    assert json.loads((out / "config.json").read_text())["provenance"] == tiny_model.provenance
