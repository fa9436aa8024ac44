"""``Avatar.load`` on files a visitor crafted or damaged: each is refused with an :class:`InputError`
naming what is wrong, before anything is allocated for what the file claims (issue 15, items 1, 4, 6)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from app_support import tiny_weights
from avatar_files import config_with, metadata_with, rewritten, tensor_with, tiny_avatar

from talking_head.avatar import MAX_HEADER_BYTES, Avatar
from talking_head.cli import main
from talking_head.config import ModelConfig
from talking_head.errors import InputError


@pytest.fixture(scope="module")
def avatar_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_avatar().save(tmp_path_factory.mktemp("avatar") / "tiny.avatar.safetensors")


MALFORMED = {
    # item 1: a config that would allocate gigabytes is refused before the generator is built
    "2048 channels": (config_with(base_channels=2048, max_channels=2048), "generator of unknown size"),
    "20000 channels": (config_with(base_channels=20000, max_channels=20000), "generator of unknown size"),
    "a known size with another's tensors": (config_with(**ModelConfig.named("small").to_dict()),
                                            r"does not match its own config: 'generator\..*' is F32 \["),
    "weights of the wrong shape": (tensor_with("generator.psi", torch.zeros(1, 3)),
                                   r"'generator.psi' is F32 \[1, 3\], expected F32/F16/BF16 \[1, \d+\]"),
    "weights as integers": (tensor_with("generator.psi", torch.zeros(1, 3, dtype=torch.int64)),
                            "'generator.psi' is I64"),
    "a missing weight": (tensor_with("generator.psi", None), "'generator.psi' is missing"),
    "an extra tensor": (tensor_with("payload", torch.zeros(10)), "holds tensors an avatar has not: .*payload"),
    # item 4: the paste-back photo, its crop box and the landmarks
    "a 2 x 4000 photo": (tensor_with("photo", torch.zeros(2, 4000, 3, dtype=torch.uint8)),
                         r"paste-back photo of shape \[2, 4000, 3\]"),
    "a 2000 x 2000 photo": (tensor_with("photo", torch.zeros(2000, 2000, 3, dtype=torch.uint8)),
                            r"paste-back photo of shape \[2000, 2000, 3\]"),
    "a grey photo": (tensor_with("photo", torch.zeros(48, 64, dtype=torch.uint8)),
                     r"paste-back photo of shape \[48, 64\]"),
    "a missing photo": (tensor_with("photo", None), "'photo' is missing"),
    "a crop box off the photo": (tensor_with("photo_box", torch.tensor([5000.0, 0, 30], dtype=torch.float64)),
                                 "crop box .* does not lie on its 64x48 photo"),
    "a crop box of side 0": (tensor_with("photo_box", torch.tensor([0.0, 0, 0], dtype=torch.float64)),
                             "crop box .* does not lie"),
    "a crop box of NaN": (tensor_with("photo_box", torch.tensor([float("nan"), 0, 30], dtype=torch.float64)),
                          "crop box .* does not lie"),
    "landmarks at infinity": (tensor_with("source_landmarks", torch.full((68, 2), float("inf"))),
                              "source landmarks that are not finite or lie far outside their 32 px crop"),
    "landmarks far outside": (tensor_with("source_landmarks", torch.full((68, 2), 1e9)), "source landmarks"),
    "bank landmarks far outside": (tensor_with("bank_landmarks", torch.full((1, 68, 2), -1e6)), "bank landmarks"),
    "a 33-shot bank": (tensor_with("bank_crops", torch.zeros(33, 640, 640, 3, dtype=torch.uint8)),
                       "malformed texture bank"),
    "a missing bank": (tensor_with("bank_crops", None), "malformed texture bank"),
    # item 6: the metadata
    "no config": (metadata_with("config", None), "has no config"),
    "a config that is not JSON": (metadata_with("config", "{base_channels: 2048"), "config that is not valid JSON"),
    "a config that is a list": (metadata_with("config", "[1, 2]"), "config that is not a JSON object"),
    "an unknown config field": (config_with(secret=1), r"invalid config \(unknown ModelConfig fields: \['secret'\]"),
    "image_size '128'": (config_with(image_size="128"), "config whose image_size is '128', not of the type int"),
    "image_size 32.0": (config_with(image_size=32.0), "config whose image_size is 32.0"),
    "image_size 0": (config_with(image_size=0), "generator of unknown size"),
    "texture_path 1": (config_with(texture_path=1), "texture_path is 1, not of the type bool"),
    "info that is a list": (metadata_with("info", "[]"), "info that is not a JSON object"),
    "info that is not JSON": (metadata_with("info", "{"), "info that is not valid JSON"),
    "a k that is text": (metadata_with("info", json.dumps({"k": "1"})), "info field 'k' of the wrong type"),
    "notes that are not text": (metadata_with("info", json.dumps({"notes": [{"a": 1}]})), "info field 'notes'"),
    "nested fine-tuning options": (metadata_with("info", json.dumps({"finetune": {"steps": [[1]]}})),
                                   "info field 'finetune'"),
    "another format": (metadata_with("format", "pickle"), "is not a talking-head avatar"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_a_malformed_avatar_is_refused_naming_what_is_wrong(case: str, avatar_file: Path, tmp_path: Path) -> None:
    change, message = MALFORMED[case]
    path = rewritten(avatar_file, tmp_path / "bad.avatar.safetensors", change)
    began = time.monotonic()
    with pytest.raises(InputError, match=message) as refused:
        Avatar.load(path)
    assert time.monotonic() - began < 2  # refused from the header: nothing the file claims was allocated
    assert "'bad.avatar.safetensors'" in str(refused.value)


def test_a_header_larger_than_an_avatars_is_refused_unread(avatar_file: Path, tmp_path: Path) -> None:
    huge = tmp_path / "huge.avatar.safetensors"
    huge.write_bytes((MAX_HEADER_BYTES + 1).to_bytes(8, "little") + b" " * 64)
    with pytest.raises(InputError, match="header is larger than an avatar header can be"):
        Avatar.load(huge)


def test_unknown_info_fields_are_dropped_and_known_ones_kept(avatar_file: Path, tmp_path: Path) -> None:
    info = {"k": 3, "notes": ["a"], "link": "[click](https://example.com)"}
    path = rewritten(avatar_file, tmp_path / "extra.avatar.safetensors", metadata_with("info", json.dumps(info)))
    assert Avatar.load(path).info == {"k": 3, "notes": ["a"]}


def test_a_sound_avatar_loads_as_it_was_saved(avatar_file: Path) -> None:
    saved, loaded = tiny_avatar(), Avatar.load(avatar_file)
    assert np.array_equal(loaded.photo, saved.photo) and loaded.photo_box == saved.photo_box
    assert loaded.info == saved.info
    for (name, a), b in zip(saved.generator.state_dict().items(), loaded.generator.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_cli_exits_2_with_the_message_for_a_malformed_avatar(avatar_file: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bad = rewritten(avatar_file, tmp_path / "bad.avatar.safetensors", metadata_with("config", "not json"))
    weights = tiny_weights(tmp_path / "weights")
    with pytest.raises(SystemExit) as exit_info:
        main(["animate", "--avatar", str(bad), "--driver", str(tmp_path / "none.mp4"), "--weights", str(weights),
              "--device", "cpu", "--landmarks", "dlib"])
    assert exit_info.value.code == 2
    assert "'bad.avatar.safetensors' has a config that is not valid JSON" in capsys.readouterr().err
