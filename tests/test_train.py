"""Meta-learning: the loop learns, resumes exactly, and runs under torchrun."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from talking_head.hub import TalkingHeadModel
from talking_head.train import TrainOptions, read_log, train


def options(data: Path, out: Path, **overrides) -> TrainOptions:
    base = dict(data=str(data), out=str(out), size="tiny", k_shots=2, batch_size=4, steps=90, lr_generator=1e-3,
                lr_discriminator=1e-3, eval_every=30, save_every=45, log_every=10, threads=1, eval_videos=6)
    return TrainOptions(**{**base, **overrides})


@pytest.mark.slow
def test_the_papers_pure_synthesis_generator_still_learns(tiny_dataset: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = train(options(tiny_dataset, tmp_path, pure_synthesis=True))
    curve = [(r["step"], r["heldout_l1"]) for r in read_log(tmp_path) if "heldout_l1" in r]
    with capsys.disabled():
        print("\nheld-out L1 by step (tiny, pure synthesis, 90 steps):", ", ".join(f"{s}: {v:.3f}" for s, v in curve))
    first, last = curve[0][1], curve[-1][1]
    # Untrained G outputs near-flat images; learning must close a clear share of that gap.
    assert last < 0.8 * first, curve
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_000045.png", "step_000090.png"]
    saved = json.loads((checkpoint / "config.json").read_text())
    assert saved["provenance"]["options"]["steps"] == 90
    loaded = TalkingHeadModel.from_pretrained(checkpoint)
    assert loaded.config.num_videos == saved["provenance"]["train_videos"] and not loaded.config.texture_path


@pytest.mark.slow
def test_the_texture_path_starts_at_its_warp_and_its_mask_learns(tiny_dataset: Path, tmp_path: Path) -> None:
    checkpoint = train(options(tiny_dataset, tmp_path, steps=60, eval_every=60, save_every=60))
    curve = [r["heldout_l1"] for r in read_log(tmp_path) if "heldout_l1" in r]
    # Step 1 is (nearly) the warp alone, already far below an untrained pure-synthesis G (about 0.5).
    assert curve[0] < 0.1 and curve[-1] < curve[0] * 1.1, curve
    mask = TalkingHeadModel.from_pretrained(checkpoint).generator.mask_conv
    assert mask.weight.abs().max() > 1e-3  # the mask left its all-warp start


def test_a_pure_synthesis_checkpoint_grows_into_a_texture_path_model(tmp_path: Path) -> None:
    import torch

    from talking_head.config import ModelConfig
    from talking_head.train import grow_into

    torch.manual_seed(0)
    old = TalkingHeadModel(ModelConfig.named("tiny", texture_path=False)).eval()
    new = TalkingHeadModel(ModelConfig.named("tiny")).eval()
    grow_into(new, old.state_dict())
    frames, landmarks = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        new.generator.mask_conv.bias.fill_(-30.0)  # show G's painting alone
        embedding = old.embedder.embed_person(frames, landmarks)
        # The new input channels start unheard: whatever the warp, G paints what the old G painted.
        assert torch.allclose(new.generator(landmarks, embedding, warped=frames), old.generator(landmarks, embedding),
                              atol=1e-5)
    with pytest.raises(ValueError, match="does not fit"):
        grow_into(old, new.state_dict())


def test_resume_continues_the_same_run(tiny_dataset: Path, tmp_path: Path) -> None:
    train(options(tiny_dataset, tmp_path / "straight", steps=8, save_every=4, log_every=1, eval_every=100))
    train(options(tiny_dataset, tmp_path / "resumed", steps=4, save_every=4, log_every=1, eval_every=100))
    train(options(tiny_dataset, tmp_path / "resumed", steps=8, save_every=4, log_every=1, eval_every=100))
    starts = (tmp_path / "resumed" / "options.jsonl").read_text().splitlines()
    assert [json.loads(line)["from_step"] for line in starts] == [0, 4]
    straight, resumed = read_log(tmp_path / "straight"), read_log(tmp_path / "resumed")
    assert [r["step"] for r in resumed] == [r["step"] for r in straight] == list(range(1, 9))
    for a, b in zip(straight, resumed):
        assert a["content"] == pytest.approx(b["content"], rel=1e-4), (a, b)
        assert a["hinge"] == pytest.approx(b["hinge"], rel=1e-4, abs=1e-5), (a, b)


def test_interrupted_save_keeps_previous_checkpoint(tiny_dataset: Path, tmp_path: Path) -> None:
    train(options(tiny_dataset, tmp_path, steps=2, save_every=2, eval_every=100))
    (tmp_path / "checkpoint.partial").mkdir()  # what a crash in the middle of saving leaves behind
    train(options(tiny_dataset, tmp_path, steps=4, save_every=2, eval_every=100))
    assert not (tmp_path / "checkpoint.partial").exists()
    assert [r["step"] for r in read_log(tmp_path) if r["step"] in (2, 4)]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_torchrun_two_processes_on_cpu(tiny_dataset: Path, tmp_path: Path) -> None:
    with socket.socket() as probe:  # torchrun's --master_port=0 hangs; hand it a free port instead
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = ["torchrun", "--nproc_per_node=2", f"--master_port={port}", "-m", "talking_head", "train",
               "--data", str(tiny_dataset), "--out", str(tmp_path), "--size", "tiny", "--k-shots", "2",
               "--batch-size", "2", "--steps", "3", "--save-every", "3", "--log-every", "1", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world size 2" in result.stderr
    assert [r["step"] for r in read_log(tmp_path)] == [1, 2, 3]
    assert (tmp_path / "checkpoint" / "generator.safetensors").is_file()
