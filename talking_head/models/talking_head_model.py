"""``TalkingHeadModel``: the three networks (E, G, D) of one size, saved and loaded together as one folder.

A checkpoint folder (local, on the Hub, or the bundled ``checkpoints/``) holds::

    config.json                  {"format": ..., "model": ModelConfig, "provenance": {...}}
    embedder.safetensors         E
    generator.safetensors        G (with the projection P)
    discriminator.safetensors    D (with W, w0, b: fine-tuning starts D' from them)
    mouth_generator.safetensors  the mouth-window generator (only where config.json has "mouth")

``TalkingHeadModel`` gets ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` from
huggingface_hub's ``ModelHubMixin`` (downloads, cache, revisions, ``HF_HUB_OFFLINE``, tokens); this
module only says how the files are laid out and checks them strictly: a missing file, a shape
mismatch or a corrupt file is a :class:`~talking_head.errors.WeightsError` naming the file, never a silent
random init. Which folder to load is ``talking_head.hub``'s business.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelHubMixin, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled
from huggingface_hub.utils import httpx as hub_http  # the HTTP client huggingface_hub uses (httpx2 in 2.x)
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from talking_head.config import ModelConfig
from talking_head.errors import WeightsError, WeightsNotFoundError
from talking_head.models.discriminator import Discriminator
from talking_head.models.embedder import Embedder
from talking_head.models.generator import Generator

WEIGHTS_FORMAT = "talking-head-weights-v1"
CONFIG_FILE = "config.json"
NETWORK_FILES = {"embedder": "embedder.safetensors", "generator": "generator.safetensors",
                 "discriminator": "discriminator.safetensors"}
#: The mouth-window generator's file (``talking_head.mouth_window``), in a folder whose config.json has "mouth".
MOUTH_FILE = "mouth_generator.safetensors"


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
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> TalkingHeadModel:
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
                         **_: Any) -> TalkingHeadModel:
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
