"""Weights: the three networks as one Hub-style folder, and where to find that folder.

A checkpoint folder (local, on the Hub, or the bundled ``checkpoints/``) holds::

    config.json                  {"format": ..., "model": ModelConfig, "provenance": {...}}
    embedder.safetensors         E
    generator.safetensors        G (with the projection P)
    discriminator.safetensors    D (with W, w0, b: fine-tuning starts D' from them)

``TalkingHeadModel`` gets ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` from
huggingface_hub's ``ModelHubMixin`` (downloads, cache, revisions, ``HF_HUB_OFFLINE``, tokens); this
module only says how the files are laid out and checks them strictly: a missing file, a shape
mismatch or a corrupt file is a :class:`WeightsError` naming the file, never a silent random init.

:func:`load_model` resolves a source: the local folder or Hub repo asked for (an error if it cannot be
loaded), or by default the Hub repo ``TALKING_HEAD_REPO``, else the bundled ``checkpoints/``, and
reports which one it used.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import socket
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from huggingface_hub import ModelHubMixin, constants, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled
from huggingface_hub.utils import httpx as hub_http  # the HTTP client huggingface_hub uses (httpx2 in 2.x)
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from talking_head.config import MODEL_SIZES, ModelConfig
from talking_head.models import Discriminator, Embedder, Generator

logger = logging.getLogger(__name__)

WEIGHTS_FORMAT = "talking-head-weights-v1"
CONFIG_FILE = "config.json"
NETWORK_FILES = {"embedder": "embedder.safetensors", "generator": "generator.safetensors",
                 "discriminator": "discriminator.safetensors"}
#: The mouth-window generator's file (``talking_head.mouth_window``), in a folder whose config.json has "mouth".
MOUTH_FILE = "mouth_generator.safetensors"
#: The Hub repo the app and CLI try first; override with the TALKING_HEAD_REPO environment variable.
DEFAULT_REPO_ID = "talking-head/talking-head-small"
#: The small model shipped with the package, found as package data: ``talking_head/checkpoints`` is a link
#: to the top-level ``checkpoints/`` (read through it in a source checkout or an editable install), which
#: setuptools copies into the package of a built wheel (``package-data`` in pyproject.toml).
BUNDLED_CHECKPOINT = Path(str(resources.files("talking_head") / "checkpoints"))


class WeightsError(RuntimeError):
    """A checkpoint exists but cannot be used (corrupt, truncated, wrong shapes, wrong format)."""


class WeightsNotFoundError(FileNotFoundError):
    """A checkpoint or one of its files cannot be found or downloaded (no network, 404, not cached)."""


#: A transfer cut short raises the HTTP client's RemoteProtocolError, which is no OSError.
_HUB_ERRORS = (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled, OSError, hub_http.HTTPError)


def _not_found(repo_id: str, revision: str | None, filename: str, error: Exception) -> WeightsNotFoundError:
    first_line = str(error).splitlines()[0] if str(error) else ""
    return WeightsNotFoundError(f"could not get {filename} of {repo_id}@{revision or 'main'} from the Hub "
                                f"({type(error).__name__}: {first_line})")


class TalkingHeadModel(nn.Module, ModelHubMixin, library_name="talking-head",
                       repo_url="https://github.com/talking-head/talking-head",
                       paper_url="https://arxiv.org/abs/1905.08233", license="apache-2.0",
                       tags=["talking-head", "few-shot", "gan"]):
    """E, G and D of one model size, saved and loaded together (one safetensors file per network)."""

    def __init__(self, config: ModelConfig | dict[str, Any], provenance: dict[str, Any] | None = None,
                 mouth: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
        #: How the weights were made (data, steps, options; written into config.json by train.py).
        self.provenance = dict(provenance or {})
        self.embedder = Embedder(self.config)
        self.generator = Generator(self.config)
        self.discriminator = Discriminator(self.config)
        #: The mouth-window generator, modulated by this embedder's embeddings (None: the weights have none).
        self.mouth = Generator(mouth) if mouth is not None else None

    @property
    def networks(self) -> dict[str, str]:
        """Network attribute -> file, of the networks these weights have."""
        return NETWORK_FILES | ({"mouth": MOUTH_FILE} if self.mouth is not None else {})

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> "TalkingHeadModel":
        """The mixin's ``from_pretrained``, with every download failure as :class:`WeightsNotFoundError`."""
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except _HUB_ERRORS as error:
            raise _not_found(str(pretrained_model_name_or_path), kwargs.get("revision"), CONFIG_FILE, error) from error
        except (UnicodeDecodeError, json.JSONDecodeError) as error:  # the mixin parses config.json before us
            raise WeightsError(f"{CONFIG_FILE} of {pretrained_model_name_or_path} is not JSON ({error}); delete it "
                               f"or download it again (force_download=True)") from error

    # -- ModelHubMixin hooks -------------------------------------------------------------------------
    def _save_pretrained(self, save_directory: Path) -> None:
        for name, filename in self.networks.items():
            state = {k: v.detach().contiguous().cpu() for k, v in getattr(self, name).state_dict().items()}
            save_file(state, str(save_directory / filename), metadata={"format": "pt", "network": name})
        config = {"format": WEIGHTS_FORMAT, "model": self.config.to_dict(), "provenance": self.provenance}
        if self.mouth is not None:
            config["mouth"] = self.mouth.config.to_dict()
        (save_directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir: str | Path | None,
                         force_download: bool, local_files_only: bool, token: str | bool | None,
                         config: dict[str, Any] | None = None, map_location: str | torch.device = "cpu",
                         **_: Any) -> "TalkingHeadModel":
        def fetch(filename: str) -> str:
            if os.path.isdir(model_id):
                path = os.path.join(model_id, filename)
                if not os.path.isfile(path):
                    raise WeightsNotFoundError(f"checkpoint folder {model_id} has no {filename}")
                return path
            try:
                path = hf_hub_download(model_id, filename, revision=revision, cache_dir=cache_dir,
                                       force_download=force_download, token=token,
                                       local_files_only=local_files_only)
            except _HUB_ERRORS as error:
                raise _not_found(model_id, revision, filename, error) from error
            verify_blob(path)
            return path

        config_path = fetch(CONFIG_FILE)  # the mixin swallows a missing config; we don't
        try:
            config = json.loads(Path(config_path).read_text())
            if config.get("format") != WEIGHTS_FORMAT:
                raise ValueError(f"format {config.get('format')!r}, expected {WEIGHTS_FORMAT!r}")
            mouth = ModelConfig.from_dict(config["mouth"]) if "mouth" in config else None
            model = cls(ModelConfig.from_dict(config["model"]), provenance=config.get("provenance"), mouth=mouth)
        except (ValueError, KeyError, TypeError) as error:
            raise WeightsError(f"{config_path}: not a talking-head config ({error})") from error
        for name, filename in model.networks.items():
            load_network(getattr(model, name), fetch(filename))
        return model.to(map_location).eval()


def verify_blob(path: str | Path) -> None:
    """Check a Hub-cached file against the sha256 its blob is named after.

    huggingface_hub stores an LFS file under the sha256 the Hub announced for it, but never hashes the
    bytes it received; safetensors checks only the header. Without this, tensor bytes altered in transit
    or on disk would load as wrong weights.
    """
    blob = Path(path).resolve()
    if not re.fullmatch(r"[0-9a-f]{64}", blob.name):
        return  # a small (non-LFS) file, named by its git sha1, or a cache without symlinks
    digest = hashlib.sha256()
    with blob.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != blob.name:
        raise WeightsError(f"{path} is corrupt: its sha256 is {digest.hexdigest()[:12]}…, the Hub's is "
                           f"{blob.name[:12]}…; delete it or download it again (force_download=True)")


def load_network(network: nn.Module, path: str | Path) -> None:
    """Load one safetensors file into ``network`` strictly, casting to the network's dtype."""
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{path} is corrupt or truncated ({error}); delete it or download it again "
                           f"(force_download=True)") from error
    dtype = next(network.parameters()).dtype
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise WeightsError(f"{path} does not fit {type(network).__name__} of this config: "
                           f"{str(error).splitlines()[0]}") from error


def save_model(model: TalkingHeadModel, directory: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Save a model folder, optionally in half precision (halves the size of a shipped checkpoint)."""
    if dtype != torch.float32:
        model = copy.deepcopy(model).to(dtype)
    model.save_pretrained(directory)
    return Path(directory)


@dataclass(frozen=True)
class LoadedModel:
    """A model and where it came from (``origin`` is ``local``, ``hub`` or ``bundled``).

    ``location`` (a folder or ``repo@revision``) is for this machine's logs. ``label`` is what may be shown
    to anyone, an app's visitors or whoever receives an avatar file, so it never holds a filesystem path.
    """

    model: TalkingHeadModel
    origin: str
    location: str

    @property
    def label(self) -> str:
        """``hub: owner/name@revision``, ``bundled: small checkpoint`` or ``local: <folder name>``."""
        if self.origin == "hub":
            return f"hub: {self.location}"
        if self.origin == "bundled":
            return f"bundled: {size_name(self.model.config)} checkpoint"
        return f"{self.origin}: {Path(self.location).resolve().name}"


def size_name(config: ModelConfig) -> str:
    """The named size (``small``, ...) ``config`` is, whatever number of videos it was trained on; else ``custom``."""
    return next((name for name, size in MODEL_SIZES.items() if replace(size, num_videos=config.num_videos) == config),
                "custom")


def _looks_like_repo_id(source: str) -> bool:
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "~")) and not os.path.exists(source)


def _hub_host_resolves() -> bool:
    """Whether the Hub endpoint's host name resolves: a machine with no network fails this at once,
    where huggingface_hub would spend ~20 s retrying before giving up on an uncached file."""
    host = urlparse(constants.ENDPOINT).hostname
    try:
        socket.getaddrinfo(host, None)
        return True
    except (socket.gaierror, UnicodeError, TypeError):
        return False


def load_model(source: str | Path | None = None, revision: str | None = None, *,
               device: str | torch.device = "cpu", **hub_kwargs: Any) -> LoadedModel:
    """Resolve weights: ``source`` (a local folder, else a Hub repo id), or with none the default.

    An explicit ``source`` that cannot be loaded is an error: a typo such as ``runs/smal`` (which reads as a
    Hub repo id) must not quietly give other weights than the ones asked for. Only the default falls back:
    the repo named by ``TALKING_HEAD_REPO`` (default :data:`DEFAULT_REPO_ID`) at ``TALKING_HEAD_REVISION``,
    and when the Hub cannot give it (offline, 404), the bundled checkpoint with a logged warning. Corrupt
    weights always raise :class:`WeightsError`.
    """
    if source is None:
        return _load_default(revision, device, **hub_kwargs)
    if os.path.isdir(source):
        return LoadedModel(TalkingHeadModel.from_pretrained(str(source), map_location=device), "local", str(source))
    try:
        return _load_hub(str(source), revision, device, **hub_kwargs)
    except WeightsNotFoundError as error:
        raise WeightsNotFoundError(f"weights {str(source)!r}: no such folder, and {error}") from error


def _load_default(revision: str | None, device: str | torch.device, **hub_kwargs: Any) -> LoadedModel:
    repo_id = os.environ.get("TALKING_HEAD_REPO", DEFAULT_REPO_ID)
    try:
        return _load_hub(repo_id, revision or os.environ.get("TALKING_HEAD_REVISION"), device, **hub_kwargs)
    except WeightsNotFoundError as error:
        bundled = Path(os.environ.get("TALKING_HEAD_CHECKPOINTS", BUNDLED_CHECKPOINT))
        logger.warning("weights: %s; using the bundled checkpoint %s", error, bundled)
        if not (bundled / CONFIG_FILE).is_file():
            raise WeightsNotFoundError(f"{error}; and no bundled checkpoint at {bundled}") from error
        return LoadedModel(TalkingHeadModel.from_pretrained(str(bundled), map_location=device), "bundled",
                           str(bundled))


def _load_hub(repo_id: str, revision: str | None, device: str | torch.device, **hub_kwargs: Any) -> LoadedModel:
    if not _looks_like_repo_id(repo_id):
        raise WeightsNotFoundError(f"{repo_id} is not a Hub repo id of the form owner/name")
    if not constants.HF_HUB_OFFLINE and not _hub_host_resolves():
        hub_kwargs.setdefault("local_files_only", True)  # offline: the cache may still hold it
    model = TalkingHeadModel.from_pretrained(repo_id, revision=revision, map_location=device, **hub_kwargs)
    logger.info("weights: Hub repo %s@%s", repo_id, revision or "main")
    return LoadedModel(model, "hub", f"{repo_id}@{revision or 'main'}")
