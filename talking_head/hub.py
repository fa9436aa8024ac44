"""Where weights come from: the Hub repo asked for, the default repo, or the bundled ``checkpoints/``.

:func:`load_model` resolves a source: the local folder or Hub repo asked for (an error if it cannot be
loaded), or by default the Hub repo ``TALKING_HEAD_REPO``, else the bundled ``checkpoints/``, and
reports which one it used. The folder's layout and the class that loads it are
``talking_head.models.talking_head_model``'s.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from huggingface_hub import constants

from talking_head.config import MODEL_SIZES, ModelConfig
from talking_head.errors import WeightsNotFoundError
from talking_head.models.talking_head_model import CONFIG_FILE, TalkingHeadModel

logger = logging.getLogger(__name__)

#: The Hub repo the app and CLI try first; override with the TALKING_HEAD_REPO environment variable.
DEFAULT_REPO_ID = "talking-head/talking-head-small"
#: The small model shipped with the package, found as package data: ``talking_head/checkpoints`` is a link
#: to the top-level ``checkpoints/`` (read through it in a source checkout or an editable install), which
#: setuptools copies into the package of a built wheel (``package-data`` in pyproject.toml).
BUNDLED_CHECKPOINT = Path(str(resources.files("talking_head") / "checkpoints"))


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
