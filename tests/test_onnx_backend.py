"""The optional ONNX Runtime backend: same frames as torch, a cache that is reused, survives damage, and
falls back to torch; ``export --onnx`` writes a graph that runs on its own."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from avatar_files import tiny_avatar
from test_golden import fixed_input

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from talking_head import onnx_backend  # noqa: E402 - after the skip: the backend needs onnxruntime
from talking_head.cli import main as cli_main  # noqa: E402
from talking_head.generator_runtime import GeneratorRuntime  # noqa: E402
from talking_head.hub import BUNDLED_CHECKPOINT
from talking_head.models import PersonalGenerator  # noqa: E402
from talking_head.models.talking_head_model import TalkingHeadModel  # noqa: E402
from talking_head.onnx_backend import CACHE_ENV, TOLERANCE, painter_for, weights_key  # noqa: E402


def tiny_generator(seed: int) -> PersonalGenerator:
    """A tiny personal generator whose every part shows in its frames: random psi and mask weights (a fresh
    one has psi 0, so AdaIN zeroes every feature, and a mask of 1, so the frame is the warp)."""
    personal = tiny_avatar(seed).generator
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        personal.psi.copy_(torch.randn(personal.psi.shape, generator=generator))
        mask_conv = personal.generator.mask_conv
        mask_conv.weight.copy_(torch.randn(mask_conv.weight.shape, generator=generator) * 0.3)
        mask_conv.bias.zero_()
    return personal


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty cache folder and no session kept from another test."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    onnx_backend._SESSIONS.clear()
    yield tmp_path / "cache" / "onnx"
    onnx_backend._SESSIONS.clear()


def inputs(personal: PersonalGenerator, size: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A batch of 3 landmark images, warped shots at ``size`` and a paint region, random but fixed."""
    generator = torch.Generator().manual_seed(seed)
    s = personal.config.image_size
    return (torch.rand(3, 3, s, s, generator=generator) * 2 - 1,
            torch.rand(3, 3, size, size, generator=generator) * 2 - 1, torch.rand(3, 1, size, size, generator=generator))


def test_the_bundled_generator_renders_the_same_frames_in_onnx_runtime(cache: Path) -> None:
    model = TalkingHeadModel.from_pretrained(BUNDLED_CHECKPOINT).eval()
    picture, drawing = fixed_input()
    with torch.no_grad():
        embedding = model.embedder.embed_person(picture, drawing)[None]
    personal = PersonalGenerator.from_generator(model.generator, model.generator.project(embedding), embedding,
                                                model.config)
    warped = F.interpolate(picture, size=256, mode="bilinear", align_corners=False)
    with torch.no_grad():
        expected = model.generator(drawing, psi=personal.psi, warped=warped)  # the float32 forward, no region
    found = GeneratorRuntime(personal, "onnx")(drawing, warped)
    assert [p.name for p in cache.iterdir()] == [f"{weights_key(personal)}.onnx"]  # it did run ONNX Runtime
    assert found.shape == expected.shape and (found - expected).abs().max() <= TOLERANCE


def test_one_graph_serves_every_psi_of_the_same_weights_and_is_reused(cache: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tiny_generator(0), tiny_generator(0)
    with torch.no_grad():
        second.psi.mul_(1.5)  # another person, fed forward through the same G
    frames = inputs(first, 64)
    onnx_first, onnx_second = (GeneratorRuntime(g, "onnx")(*frames) for g in (first, second))
    assert len(list(cache.iterdir())) == 1
    for generator, found in ((first, onnx_first), (second, onnx_second)):
        assert (found - generator.generate(*frames)).abs().max() <= TOLERANCE
    assert (onnx_first - onnx_second).abs().max() > 0.01  # psi is an input, not baked in

    onnx_backend._SESSIONS.clear()  # a new process: the file on disk is loaded, not exported again
    monkeypatch.setattr(onnx_backend, "export_onnx", lambda *_: pytest.fail("the cached graph was not reused"))
    assert painter_for(first) is not None


def test_a_damaged_cache_is_exported_again(cache: Path) -> None:
    personal = tiny_generator(0)
    frames = inputs(personal, 32)
    path = cache / f"{weights_key(personal)}.onnx"
    cache.mkdir(parents=True)
    path.write_bytes(b"not an onnx graph")
    assert painter_for(personal) is not None and path.stat().st_size > 1000

    # A graph that loads but is another generator's (a stale or tampered file) fails the check against torch.
    onnx_backend._SESSIONS.clear()
    onnx_backend.export_onnx(tiny_generator(1), path)
    stale = path.read_bytes()
    found = GeneratorRuntime(personal, "onnx")(*frames)
    assert path.read_bytes() != stale
    assert (found - personal.generate(*frames)).abs().max() <= TOLERANCE


def test_without_a_usable_graph_torch_renders(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    personal = tiny_generator(0)
    frames = inputs(personal, 32)

    def broken_export(*_: object) -> None:
        raise RuntimeError("exporter broke")

    monkeypatch.setattr(onnx_backend, "export_onnx", broken_export)
    assert painter_for(personal) is None
    assert torch.equal(GeneratorRuntime(personal, "onnx")(*frames), GeneratorRuntime(personal, "torch")(*frames))


def test_export_onnx_writes_an_avatars_generator_that_runs_alone(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    avatar = replace(tiny_avatar(0), generator=tiny_generator(0))
    path = avatar.save(tmp_path / "person.safetensors")
    cli_main(["export", "--onnx", str(path)])
    graph = tmp_path / "person.onnx"
    assert str(graph) in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["landmark_images", "warped"]  # psi is baked in
    config = json.loads(session.get_modelmeta().custom_metadata_map["talking_head_config"])
    assert config == avatar.generator.config.to_dict()
    landmarks, warped, _ = inputs(avatar.generator, config["image_size"])
    painted, mask = session.run(None, {"landmark_images": landmarks.numpy(), "warped": warped.numpy()})
    with torch.no_grad():
        expected = avatar.generator.generator.paint(landmarks, avatar.generator.psi, warped)
    assert np.abs(painted - expected[0].numpy()).max() <= TOLERANCE
    assert np.abs(mask - expected[1].numpy()).max() <= TOLERANCE



def test_the_cache_keeps_the_most_recently_used_graphs(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.mkdir(parents=True)
    for age in range(4):  # stale graphs of other weights, the oldest last
        stale = cache / f"stale{age}.onnx"
        stale.write_bytes(b"old")
        os.utime(stale, (1e9 - age, 1e9 - age))
    monkeypatch.setattr(onnx_backend, "MAX_CACHED_GRAPHS", 3)
    personal = tiny_generator(0)
    assert painter_for(personal) is not None
    # The new graph and the two most recently used stale ones stay; the two oldest are gone.
    assert sorted(p.name for p in cache.glob("*.onnx")) == sorted([f"{weights_key(personal)}.onnx", "stale0.onnx",
                                                                    "stale1.onnx"])


def test_the_weights_key_is_remembered_until_a_weight_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    personal = tiny_generator(0)
    hashed = []
    real_hash = onnx_backend._hash_weights
    monkeypatch.setattr(onnx_backend, "_hash_weights", lambda p: hashed.append(p) or real_hash(p))
    first = weights_key(personal)
    assert weights_key(personal) == first and len(hashed) == 1  # not hashed again
    with torch.no_grad():
        personal.generator.mask_conv.bias.add_(0.5)  # fine-tuned in place: another graph
    changed = weights_key(personal)
    assert changed != first and len(hashed) == 2
    with torch.no_grad():
        personal.generator.mask_conv.bias.sub_(0.5)
    assert weights_key(personal) == first  # the same weights again, the same graph
    assert weights_key(tiny_generator(0)) == first  # another generator with these weights shares it
