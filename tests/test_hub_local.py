"""Checkpoint folders: safetensors round trip, strict loading, clear errors, bundled fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from talking_head.config import ModelConfig
from talking_head.errors import WeightsError, WeightsNotFoundError
from talking_head.hub import load_model
from talking_head.models.talking_head_model import NETWORK_FILES, TalkingHeadModel, save_model


def render(model: TalkingHeadModel) -> torch.Tensor:
    torch.manual_seed(1)
    frames, landmarks = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model.generator(landmarks, model.embedder.embed_person(frames, landmarks),
                              warped=frames if model.config.texture_path else None)
        score, _ = model.discriminator(out, landmarks, torch.tensor([0, 1]))
    return torch.cat([out.flatten(), score])


def test_save_load_round_trip_is_bit_identical(tiny_model: TalkingHeadModel, tmp_path: Path) -> None:
    tiny_model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*NETWORK_FILES.values(), "config.json", "README.md"])
    loaded = TalkingHeadModel.from_pretrained(tmp_path)
    assert loaded.config == tiny_model.config
    assert torch.equal(render(loaded), render(tiny_model))


def test_half_precision_checkpoint_is_half_the_size_and_close(tiny_model: TalkingHeadModel, tmp_path: Path) -> None:
    full, half = save_model(tiny_model, tmp_path / "full"), save_model(tiny_model, tmp_path / "half", torch.float16)
    size = lambda d: sum((d / f).stat().st_size for f in NETWORK_FILES.values())  # noqa: E731
    assert size(half) < 0.6 * size(full)
    assert torch.allclose(render(TalkingHeadModel.from_pretrained(half)), render(tiny_model), atol=2e-2)


def test_missing_file_names_the_file(tiny_model: TalkingHeadModel, tmp_path: Path) -> None:
    tiny_model.save_pretrained(tmp_path)
    (tmp_path / "generator.safetensors").unlink()
    with pytest.raises(WeightsNotFoundError, match="generator.safetensors"):
        TalkingHeadModel.from_pretrained(tmp_path)


def test_truncated_file_is_a_clear_error(tiny_model: TalkingHeadModel, tmp_path: Path) -> None:
    tiny_model.save_pretrained(tmp_path)
    path = tmp_path / "embedder.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match="embedder.safetensors is corrupt or truncated"):
        TalkingHeadModel.from_pretrained(tmp_path)


def test_shape_mismatch_is_a_clear_error(tiny_model: TalkingHeadModel, tmp_path: Path) -> None:
    tiny_model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["embedding_dim"] = 16
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match=r"embedder.safetensors does not fit Embedder"):
        TalkingHeadModel.from_pretrained(tmp_path)


def test_foreign_config_is_rejected(tiny_model: TalkingHeadModel, tmp_path: Path) -> None:
    tiny_model.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 3}))
    with pytest.raises(WeightsError, match="not a talking-head config"):
        TalkingHeadModel.from_pretrained(tmp_path)


def test_unreachable_hub_falls_back_to_bundled(tiny_model: TalkingHeadModel, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    tiny_model.save_pretrained(tmp_path / "bundled")
    monkeypatch.setenv("TALKING_HEAD_CHECKPOINTS", str(tmp_path / "bundled"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("TALKING_HEAD_REPO", "nobody/does-not-exist")
    loaded = load_model()  # the default repo: the bundled weights stand in for it
    assert loaded.origin == "bundled" and loaded.location == str(tmp_path / "bundled")
    assert torch.equal(render(loaded.model), render(tiny_model))
    with pytest.raises(WeightsNotFoundError, match="nobody/does-not-exist"):
        load_model("nobody/does-not-exist")  # asked for by name: no stand-in


def test_local_folder_wins_and_bad_source_is_explained(tiny_model: TalkingHeadModel, tmp_path: Path) -> None:
    tiny_model.save_pretrained(tmp_path / "mine")
    assert load_model(tmp_path / "mine").origin == "local"
    with pytest.raises(WeightsNotFoundError, match="no such folder"):
        load_model(tmp_path / "missing" / "deeper" / "folder")


def test_config_round_trips_through_dict() -> None:
    config = ModelConfig.named("small", num_videos=7)
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        ModelConfig.from_dict({"image_size": 64, "width": 3})


def test_no_arguments_and_no_network_loads_the_bundled_small_checkpoint(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    from talking_head.hub import BUNDLED_CHECKPOINT

    monkeypatch.delenv("TALKING_HEAD_CHECKPOINTS", raising=False)
    monkeypatch.delenv("TALKING_HEAD_REPO", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    loaded = load_model()
    assert (loaded.origin, Path(loaded.location)) == ("bundled", BUNDLED_CHECKPOINT)
    assert loaded.model.config == ModelConfig.named("small", num_videos=loaded.model.config.num_videos)
    assert next(loaded.model.parameters()).dtype == torch.float32  # stored in fp16, used in fp32
