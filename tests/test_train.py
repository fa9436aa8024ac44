"""Meta-learning: the loop learns, resumes exactly, and runs under torchrun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from app_support import free_port
from safetensors.torch import load_file

from talking_head import train as train_module
from talking_head.models.talking_head_model import TalkingHeadModel
from talking_head.train import TrainOptions, train


def read_log(out: str | Path) -> list[dict[str, float]]:
    """The run's log.jsonl, one dict a line (none before the first line is written)."""
    path = Path(out) / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


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


def test_a_half_written_save_is_ignored_and_the_run_resumes_from_the_last_checkpoint(tiny_dataset: Path,
                                                                                       tmp_path: Path) -> None:
    run = dict(save_every=2, log_every=1, eval_every=100)
    train(options(tiny_dataset, tmp_path, steps=2, **run))
    partial = tmp_path / "checkpoint.partial"  # what a crash in the middle of the next save leaves behind:
    shutil.copytree(tmp_path / "checkpoint", partial)  # a whole-looking folder ...
    for written in partial.glob("*.safetensors"):
        written.write_bytes(written.read_bytes()[:100])  # ... whose files stop part-way
    train(options(tiny_dataset, tmp_path, steps=4, **run))
    assert not partial.exists()
    starts = [json.loads(line)["from_step"] for line in (tmp_path / "options.jsonl").read_text().splitlines()]
    assert starts == [0, 2]  # from checkpoint/, the half-written folder never read
    assert [r["step"] for r in read_log(tmp_path)] == [1, 2, 3, 4]
    TalkingHeadModel.from_pretrained(tmp_path / "checkpoint")  # the new save is whole


def test_a_crash_between_the_two_renames_resumes_from_checkpoint_old(tiny_dataset: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    rename = Path.rename

    def crash_once_the_old_checkpoint_is_aside(self: Path, target: Path) -> Path:
        if self.name == "checkpoint.partial" and (tmp_path / "checkpoint.old").exists():
            raise OSError("killed between the renames")
        return rename(self, target)

    run = dict(save_every=2, log_every=1, eval_every=100)
    with monkeypatch.context() as patch:
        patch.setattr(Path, "rename", crash_once_the_old_checkpoint_is_aside)
        with pytest.raises(OSError, match="between the renames"):
            train(options(tiny_dataset, tmp_path, steps=4, **run))  # the save at step 4 dies half-way
    assert not (tmp_path / "checkpoint").exists() and (tmp_path / "checkpoint.old").is_dir()
    crashed = read_log(tmp_path)

    train(options(tiny_dataset, tmp_path, steps=6, **run))
    starts = [json.loads(line)["from_step"] for line in (tmp_path / "options.jsonl").read_text().splitlines()]
    assert starts == [0, 2]  # from checkpoint.old's step 2, not from scratch
    resumed = read_log(tmp_path)
    assert [r["step"] for r in resumed] == list(range(1, 7))
    assert resumed[:2] == crashed[:2]  # the log kept the steps before the checkpoint ...
    for before, again in zip(crashed[2:4], resumed[2:4]):  # ... and steps 3-4 were run again from that state
        assert again["content"] == pytest.approx(before["content"], rel=1e-4)
    assert sorted(p.name for p in tmp_path.glob("checkpoint*")) == ["checkpoint"]


@pytest.mark.parametrize(("option", "value", "message"), [
    ("discriminator_steps", 0, "discriminator_steps must be >= 1"),
    ("batch_size", 0, "batch_size must be >= 1"),
    ("lr_generator", 0.0, "lr_generator must be > 0"),
    ("save_every", 0, "save_every must be >= 1"),
    ("size", "huge", "size must be one of"),
])
def test_invalid_options_are_refused_when_made(tmp_path: Path, option: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        options(tmp_path, tmp_path, **{option: value})


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_torchrun_two_processes_on_cpu_end_with_identical_weights(tiny_dataset: Path, tmp_path: Path) -> None:
    """Each rank samples its own episodes: only gradients averaged across ranks keep their models equal."""
    port = free_port()  # torchrun's --master_port=0 hangs; hand it a free port instead
    out, dump = tmp_path / "run", tmp_path / "weights"
    dump.mkdir()
    worker = Path(__file__).parent / "train_one_rank.py"
    command = ["torchrun", "--nproc_per_node=2", f"--master_port={port}", str(worker), str(dump), "--data",
               str(tiny_dataset), "--out", str(out), "--size", "tiny", "--k-shots", "2", "--batch-size", "2",
               "--steps", "3", "--save-every", "3", "--log-every", "1", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world size 2" in result.stderr
    assert [r["step"] for r in read_log(out)] == [1, 2, 3]
    ranks = [load_file(str(dump / f"rank{rank}.safetensors")) for rank in (0, 1)]
    saved = TalkingHeadModel.from_pretrained(out / "checkpoint").state_dict()
    assert ranks[0].keys() == ranks[1].keys() == saved.keys()
    different = [name for name in ranks[0] if not torch.equal(ranks[0][name], ranks[1][name])]
    assert not different, different
    assert all(torch.equal(ranks[0][name], saved[name]) for name in saved)  # and rank 0 saved what it trained


def test_init_distributed_puts_each_rank_on_the_gpu_of_its_local_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    chosen, backends = [], []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(train_module.dist, "init_process_group", lambda backend: backends.append(backend))
    monkeypatch.setattr(train_module.dist, "get_rank", lambda: 1)
    monkeypatch.setattr(train_module.dist, "get_world_size", lambda: 2)
    assert train_module.init_distributed(torch.device("cuda")) == (torch.device("cuda", 1), 1, 2)
    assert chosen == [torch.device("cuda", 1)] and backends == ["nccl"]
    assert train_module.init_distributed(torch.device("cpu"))[0] == torch.device("cpu")  # gloo: no GPU to pick
    assert backends[-1] == "gloo" and len(chosen) == 1


def test_agree_broadcasts_on_the_process_groups_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """NCCL refuses CPU tensors: rank 0's decision must travel on the device the group runs on."""
    sent = []

    class Sent(Exception):
        pass

    def broadcast(tensor: torch.Tensor, src: int) -> None:
        sent.append(tensor.device)
        raise Sent  # a meta tensor has no value to read back; what matters is where it was sent from

    monkeypatch.setattr(train_module.dist, "broadcast", broadcast)
    with pytest.raises(Sent):
        train_module._rank_zero_decides(True, 2, torch.device("meta"))
    assert sent == [torch.device("meta")]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU for NCCL")
def test_agree_works_in_an_nccl_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    train_module.dist.init_process_group("nccl", rank=0, world_size=1)
    try:
        assert train_module._rank_zero_decides(True, 2, torch.device("cuda", 0)) is True  # world 2: take the broadcast path
    finally:
        train_module.dist.destroy_process_group()
