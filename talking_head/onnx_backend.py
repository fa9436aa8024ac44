"""ONNX Runtime for a personalised generator's network: exported once, cached, checked, torch as the fallback.

What the graph holds is ``Generator.paint`` alone: the network at the model's resolution (128 px for the
shipped model), landmark images (+ the warped shots, already area-downsampled) -> painting (+ mask).
The downsampling and the composite at the output's resolution (256/512 px, a size per request) stay in
torch (``PersonalGenerator.generate``), so the graph has one shape but for the batch, and the math of
the generator has one implementation, the one torch runs.

The cached graph takes psi as an input and is keyed by a hash of G's weights (not psi): every
feed-forward avatar of one checkpoint shares one graph, exported once per machine; a fine-tuned avatar
(its own weights) is exported on its first render. ``export_onnx(..., psi_as_input=False)`` bakes psi
in instead, for an avatar's generator used outside this project (``python -m talking_head export --onnx``).

onnxruntime is an optional dependency (``pip install 'talking-head[onnx]'``); ``talking_head.device``
decides when this runtime is used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import warnings
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from talking_head.models.personal import PersonalGenerator

logger = logging.getLogger(__name__)

CACHE_ENV = "TALKING_HEAD_CACHE"
#: Part of every cache key: bump it when what the graph holds changes (its inputs, outputs or export options).
GRAPH_FORMAT = "paint-v1"
#: ONNX opset of the exported graphs (onnxruntime 1.16+ runs it).
OPSET = 17
#: A graph must reproduce torch's float32 output to this, in [-1, 1] image units, or it is not used
#: (measured on the shipped generator: 4e-6 for the painting, 2e-7 for the mask).
TOLERANCE = 1e-3
#: At most this many onnxruntime sessions stay loaded (a few MB of weights each).
MAX_SESSIONS = 4
#: Graphs kept in the cache folder; past that, the least recently used go. Each fine-tuned avatar has
#: its own (6.7 MB for the shipped size), so a public Space would otherwise gain one per visitor who
#: fine-tunes, for as long as it runs.
MAX_CACHED_GRAPHS = 16

Paint = tuple[torch.Tensor, torch.Tensor | None]


def cache_dir() -> Path:
    """Where exported graphs are kept: ``TALKING_HEAD_CACHE``, else the XDG cache (``~/.cache/talking_head``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "talking_head"


class _PaintGraph(nn.Module):
    """What is exported: ``Generator.paint`` of a personal generator, psi an input or baked in."""

    def __init__(self, personal: PersonalGenerator) -> None:
        super().__init__()
        self.personal = personal

    def forward(self, landmark_images: torch.Tensor, warped: torch.Tensor | None = None,
                psi: torch.Tensor | None = None) -> Paint:
        return self.personal.generator.paint(landmark_images, self.personal.psi if psi is None else psi, warped)


def export_onnx(personal: PersonalGenerator, path: str | Path, psi_as_input: bool = True) -> Path:
    """Write ``personal``'s network (``Generator.paint``) as an ONNX graph, atomically.

    Inputs: ``landmark_images`` (B, 3, S, S) in [-1, 1], on the texture path ``warped`` (B, 3, S, S) (the
    shots warped onto the targets, at the model's resolution S), and with ``psi_as_input`` ``psi``
    (1, P). Outputs: ``painted`` (B, 3, S, S) in [-1, 1] and, on the texture path, ``mask`` (B, 1, S, S)
    in [0, 1]; the frame is ``mask * warped + (1 - mask) * painted`` (``Generator.composite``).
    """
    config, path = personal.config, Path(path)
    size = config.image_size
    names = ["landmark_images"] + (["warped"] if config.texture_path else [])
    inputs = [torch.zeros(1, config.landmark_channels, size, size)]
    inputs += [torch.zeros(1, config.image_channels, size, size)] if config.texture_path else []
    if psi_as_input:
        names.append("psi")
        inputs += [None] * (2 - len(inputs)) + [personal.psi.detach().cpu()]
    outputs = ["painted"] + (["mask"] if config.texture_path else [])
    graph = _PaintGraph(personal).cpu().eval()
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")  # processes may export the same key at once
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on shape checks in Python (one shape is traced)
        torch.onnx.export(graph, tuple(inputs), str(partial), dynamo=False, opset_version=OPSET,
                          input_names=names, output_names=outputs,
                          dynamic_axes={name: {0: "batch"} for name in [*names, *outputs] if name != "psi"})
    _set_metadata(partial, {"talking_head_config": json.dumps(config.to_dict()), "talking_head_graph": GRAPH_FORMAT})
    os.replace(partial, path)
    return path


def _set_metadata(path: Path, properties: dict[str, str]) -> None:
    """The model config in the graph itself: whoever runs it elsewhere knows its resolution and channels."""
    import onnx

    model = onnx.load(str(path))
    for key, value in properties.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def weights_key(personal: PersonalGenerator) -> str:
    """A hash of what the graph depends on besides psi: G's weights, the config, torch and the graph format.

    Remembered per generator while none of its tensors is replaced or changed in place (torch counts every
    in-place change in a tensor's ``_version``): hashing the shipped G's 6.7 MB on every batch of 8 frames
    cost 0.8 ms a frame.
    """
    tensors = personal.generator.state_dict(keep_vars=True).values()
    fingerprint = tuple((t.data_ptr(), t._version) for t in tensors)
    remembered = _KEYS.get(personal)
    if remembered is None or remembered[0] != fingerprint:
        remembered = _KEYS[personal] = (fingerprint, _hash_weights(personal))
    return remembered[1]


def _hash_weights(personal: PersonalGenerator) -> str:
    digest = hashlib.sha256(f"{GRAPH_FORMAT} torch {torch.__version__} opset {OPSET}".encode())
    digest.update(json.dumps(personal.config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(personal.generator.state_dict().items()):
        digest.update(f"{name} {tuple(tensor.shape)} {tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


class OnnxPainter:
    """An onnxruntime session of an exported graph: ``Generator.paint``'s signature, on CPU tensors."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1  # as torch's threads: one pool
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, landmark_images: torch.Tensor, psi: torch.Tensor, warped: torch.Tensor | None = None) -> Paint:
        given = {"landmark_images": landmark_images, "warped": warped, "psi": psi}
        feeds = {name: np.ascontiguousarray(given[name].detach().cpu().float().numpy()) for name in self.inputs}
        outputs = [torch.from_numpy(o) for o in self.session.run(None, feeds)]
        return outputs[0], outputs[1] if len(outputs) > 1 else None


def _reproduces_torch(painter: OnnxPainter, personal: PersonalGenerator) -> bool:
    """Whether the graph computes what torch does, in float32, on one fixed input (a damaged or stale file
    that still loads would not)."""
    config, size = personal.config, personal.config.image_size
    generator = torch.Generator().manual_seed(0)
    landmarks = torch.rand(1, config.landmark_channels, size, size, generator=generator) * 2 - 1
    warped = torch.rand(1, config.image_channels, size, size, generator=generator) * 2 - 1 \
        if config.texture_path else None
    psi = personal.psi.detach().cpu()
    with torch.no_grad():
        expected = _PaintGraph(personal).cpu()(landmarks, warped, psi)
    found = painter(landmarks, psi, warped)
    return all((e - f).abs().max().item() <= TOLERANCE for e, f in zip(expected, found) if e is not None)


def painter_for(personal: PersonalGenerator) -> OnnxPainter | None:
    """The onnxruntime painter of ``personal``'s network from the cache, exported there first if missing;
    a cached graph that fails to load or disagrees with torch is exported again. None (torch renders) where
    that fails too. Sessions (and failures) are kept per weights, so generators with the same weights
    share one and nothing is tried twice."""
    key = (weights_key(personal), torch.get_num_threads())
    with _LOCK:  # one export at a time: concurrent renders of a new avatar wait for the first's export
        if key not in _SESSIONS:
            _SESSIONS[key] = _load_or_export(cache_dir() / "onnx" / f"{key[0]}.onnx", personal, key[1])
            if len(_SESSIONS) > MAX_SESSIONS:
                _SESSIONS.popitem(last=False)
        _SESSIONS.move_to_end(key)
        return _SESSIONS[key]


_LOCK = threading.Lock()
_KEYS: weakref.WeakKeyDictionary[PersonalGenerator, tuple[tuple, str]] = weakref.WeakKeyDictionary()
_SESSIONS: OrderedDict[tuple[str, int], OnnxPainter | None] = OrderedDict()


def prune_cache(folder: Path, keep: int | None = None) -> None:
    """Remove all but the ``keep`` (``MAX_CACHED_GRAPHS``) most recently used graphs from ``folder``.

    A session already built from a removed file is unaffected: ONNX Runtime read it when it loaded.
    """
    graphs = sorted(folder.glob("*.onnx"), key=lambda graph: graph.stat().st_mtime, reverse=True)
    for graph in graphs[MAX_CACHED_GRAPHS if keep is None else keep:]:
        graph.unlink(missing_ok=True)


def _load_or_export(path: Path, personal: PersonalGenerator, threads: int) -> OnnxPainter | None:
    for attempt in ("cached", "exported"):
        if attempt == "cached" and not path.is_file():
            continue
        try:
            if attempt == "exported":
                export_onnx(personal, path)
                logger.info("exported the generator for ONNX Runtime to %s", path)
            painter = OnnxPainter(path, threads)
            if _reproduces_torch(painter, personal):
                path.touch()  # used now: the last graph the prune would remove
                prune_cache(path.parent)
                return painter
            logger.warning("%s does not reproduce the generator's output", path)
        except Exception as error:  # noqa: BLE001 - any failure of an optional runtime falls back to torch
            logger.warning("ONNX Runtime could not use %s (%s)", path, error)
        path.unlink(missing_ok=True)
    logger.warning("rendering with torch instead of ONNX Runtime")
    return None
