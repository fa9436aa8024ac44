"""The Hub download path for real: huggingface_hub fetching from a loopback Hub (tests/hub_server.py).

Most tests point huggingface_hub at the server by patching ``huggingface_hub.constants`` (the module
reads ``HF_ENDPOINT`` / ``HF_HUB_CACHE`` once, at import, into those attributes, and looks them up on
every call). One test sets the real environment variables in fresh Python processes, the way a user's
shell or a Space would, to prove that wiring too.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hub_server import FakeHub, Fault
from huggingface_hub import constants

from talking_head.config import ModelConfig
from talking_head.errors import WeightsError, WeightsNotFoundError
from talking_head.hub import load_model
from talking_head.models.talking_head_model import TalkingHeadModel

REPO = "talking-head/tiny-test"
TESTS = Path(__file__).resolve().parent

def render(model: TalkingHeadModel) -> torch.Tensor:
    """G's frames from E's embedding, and D's scores, on fixed inputs: equal only if all weights are."""
    generator = torch.Generator().manual_seed(1)
    frames, landmarks = (torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1 for _ in range(2))
    with torch.no_grad():
        out = model.generator(landmarks, model.embedder.embed_person(frames, landmarks),
                              warped=frames if model.config.texture_path else None)
        score, _ = model.discriminator(out, landmarks, torch.tensor([0, 1]))
    return torch.cat([out.flatten(), score.flatten()])


def seeded_folder(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    TalkingHeadModel(ModelConfig.named("tiny", num_videos=4)).eval().save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from a second thread, and on a busy 2-core machine two threads that wait
    on each other made these tests' convolutions up to 40x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A running loopback Hub that huggingface_hub (in this process) downloads from into tmp_path/cache;
    the bundled checkpoint is tmp_path/bundled (seed 3)."""
    server = FakeHub().start()
    monkeypatch.setattr(constants, "ENDPOINT", server.endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        server.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))  # send no user token
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("TALKING_HEAD_CHECKPOINTS", str(seeded_folder(tmp_path / "bundled", seed=3)))
    yield server
    server.stop()


def cached(tmp_path: Path, filename: str) -> list[Path]:
    return sorted((tmp_path / "cache").glob(f"models--*/snapshots/*/{filename}"))


# -- a fresh process configured by environment variables ------------------------------------------------
def _child_load(repo_id: str, reference: str) -> None:
    """Run in a child process: load ``repo_id`` through the Hub, print what a test needs as JSON."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    loaded = load_model(repo_id)
    seconds = time.perf_counter() - start
    digest = lambda model: hashlib.sha256(render(model).numpy().tobytes()).hexdigest()  # noqa: E731
    print(json.dumps({"origin": loaded.origin, "location": loaded.location, "seconds": seconds,
                      "render": digest(loaded.model), "reference": digest(load_model(reference).model),
                      "cache": constants.HF_HUB_CACHE}))


def run_child(repo_id: str, reference: Path, env: dict[str, str]) -> dict:
    code = f"import test_hub_download as t; t._child_load({repo_id!r}, {str(reference)!r})"
    pythonpath = os.pathsep.join([str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": pythonpath},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_env_configured_process_downloads_to_hf_cache_then_loads_it_with_the_hub_down(tmp_path: Path) -> None:
    saved = seeded_folder(tmp_path / "saved", seed=0)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TALKING_HEAD_"))}
    with FakeHub() as server:
        commit = server.add_commit(REPO, saved)
        env.update(HF_ENDPOINT=server.endpoint, HF_HUB_CACHE=str(tmp_path / "cache"), HF_HOME=str(tmp_path / "home"),
                   HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1",
                   HF_HUB_DISABLE_PROGRESS_BARS="1")
        first = run_child(REPO, saved, env)
        downloaded = {path for _, path in server.requests if "/lfs/" in path}
    assert first["origin"] == "hub" and first["location"] == f"{REPO}@main"
    assert first["render"] == first["reference"]  # bit-identical to the folder that was published
    assert first["cache"] == str(tmp_path / "cache")
    assert len(downloaded) == 3  # the three safetensors files came over HTTP (via the CDN redirect)
    for filename in ("config.json", "embedder.safetensors", "generator.safetensors", "discriminator.safetensors"):
        assert cached(tmp_path, filename) == [tmp_path / "cache" / f"models--talking-head--tiny-test/snapshots/{commit}"
                                              / filename]

    again = run_child(REPO, saved, env)  # the server is gone: connection refused, so the cache answers
    assert again["origin"] == "hub" and again["render"] == first["render"]
    assert again["seconds"] < 5, again  # an uncached file would be retried for ~20 s before giving up


# -- in-process scenarios -------------------------------------------------------------------------------
def test_revision_pins_the_downloaded_weights(hub: FakeHub, tmp_path: Path) -> None:
    old, new = seeded_folder(tmp_path / "old", seed=0), seeded_folder(tmp_path / "new", seed=1)
    pinned = hub.add_commit(REPO, old)
    hub.add_commit(REPO, new)  # main moves on

    at_pin = load_model(REPO, revision=pinned)
    at_main = load_model(REPO)

    assert at_pin.origin == at_main.origin == "hub"
    assert at_pin.location == f"{REPO}@{pinned}" and at_main.location == f"{REPO}@main"
    assert at_pin.label == f"hub: {REPO}@{pinned}"
    assert torch.equal(render(at_pin.model), render(TalkingHeadModel.from_pretrained(old)))
    assert torch.equal(render(at_main.model), render(TalkingHeadModel.from_pretrained(new)))
    assert not torch.equal(render(at_pin.model), render(at_main.model))
    assert ("HEAD", f"/{REPO}/resolve/{pinned}/generator.safetensors") in hub.requests
    assert len(cached(tmp_path, "generator.safetensors")) == 2  # one snapshot per commit


@pytest.mark.parametrize(("repo_id", "drop", "missing"), [
    ("nobody/does-not-exist", None, "config.json"),  # 404 RepoNotFound
    (REPO, "generator.safetensors", "generator.safetensors"),  # 404 EntryNotFound
], ids=["unknown-repo", "missing-generator"])
def test_404_of_the_default_repo_falls_back_to_bundled_and_of_an_explicit_one_names_the_file(
        hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo_id: str, drop: str | None,
        missing: str) -> None:
    published = seeded_folder(tmp_path / "published", seed=0)
    if drop:
        (published / drop).unlink()
    hub.add_commit(REPO, published)

    monkeypatch.setenv("TALKING_HEAD_REPO", repo_id)
    loaded = load_model()
    assert loaded.origin == "bundled" and loaded.location == os.environ["TALKING_HEAD_CHECKPOINTS"]
    assert torch.equal(render(loaded.model), render(TalkingHeadModel.from_pretrained(loaded.location)))
    with pytest.raises(WeightsNotFoundError, match=rf"{missing} of {repo_id}@main"):
        load_model(repo_id)


def test_an_explicit_source_that_cannot_be_loaded_is_an_error_not_the_bundled_weights(
        hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "runs" / "small").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsNotFoundError, match=r"weights 'runs/smal': no such folder, and could not get "
                                                   r"config.json of runs/smal@main from the Hub"):
        load_model("runs/smal")  # a typo of a run folder reads as a Hub repo id, which the Hub does not have
    assert any("/runs/smal/" in path for _, path in hub.requests)  # the (loopback) Hub was asked, and said no


@pytest.mark.slow
def test_truncated_download_is_an_error_naming_the_file(hub: FakeHub, tmp_path: Path) -> None:
    hub.add_commit(REPO, seeded_folder(tmp_path / "published", seed=0))
    hub.faults["generator.safetensors"] = Fault.TRUNCATED  # huggingface_hub retries 5 times, 1 s apart
    with pytest.raises(WeightsNotFoundError, match="generator.safetensors"):
        load_model(REPO)
    assert cached(tmp_path, "generator.safetensors") == []  # no half file left to be loaded later


@pytest.mark.parametrize("filename", ["generator.safetensors", "config.json"])
def test_corrupt_download_is_a_weights_error_naming_the_file(hub: FakeHub, tmp_path: Path, filename: str) -> None:
    hub.add_commit(REPO, seeded_folder(tmp_path / "published", seed=0))
    hub.faults[filename] = Fault.CORRUPT  # the promised length, every byte wrong
    with pytest.raises(WeightsError, match=filename):
        load_model(REPO)  # never the bundled weights: a broken download must be seen, not papered over


def test_altered_tensor_bytes_are_a_weights_error(hub: FakeHub, tmp_path: Path) -> None:
    hub.add_commit(REPO, seeded_folder(tmp_path / "published", seed=0))
    hub.faults["generator.safetensors"] = Fault.FLIPPED_DATA  # header intact, last 64 bytes of data wrong
    with pytest.raises(WeightsError, match="generator.safetensors"):
        load_model(REPO)


def test_weights_with_a_mouth_generator_bring_it_from_the_hub(hub: FakeHub, tmp_path: Path) -> None:
    from talking_head.config import mouth_model
    from talking_head.models.talking_head_model import MOUTH_FILE

    torch.manual_seed(0)
    config = ModelConfig.named("tiny", num_videos=4)
    published = TalkingHeadModel(config, mouth=mouth_model(config)).eval()
    published.save_pretrained(tmp_path / "with_mouth")
    hub.add_commit(REPO, tmp_path / "with_mouth")

    loaded = load_model(REPO).model
    assert ("HEAD", f"/{REPO}/resolve/main/{MOUTH_FILE}") in hub.requests
    assert loaded.mouth is not None and loaded.mouth.config == mouth_model(config)
    for name, value in published.mouth.state_dict().items():
        assert torch.equal(loaded.mouth.state_dict()[name], value), name
