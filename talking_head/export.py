"""A training checkpoint -> a shippable weights folder (or Hub repo): ``python -m talking_head export``.

Drops the optimiser state, optionally stores the weights in half precision (loading casts back to
float32) and reports what that costs: the largest difference of G's output between the two.

``export --onnx AVATAR`` instead writes a saved avatar's generator as an ONNX graph beside it, for use
outside this project (``talking_head.onnx_backend.export_onnx`` says what it computes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import torch
from safetensors import safe_open

from talking_head.models.talking_head_model import MOUTH_FILE, NETWORK_FILES, TalkingHeadModel, save_model
from talking_head.options import option
from talking_head.train import STATE_FILE


@dataclass
class ExportOptions:
    checkpoint: str = option("runs/small/checkpoint", "training checkpoint folder (train.py's out/checkpoint)")
    out: str = option("checkpoints", "folder to write (its README.md model card is kept if present)")
    dtype: str = option("float16", "storage precision", choices=["float16", "float32"])
    push_to_hub: str | None = option(None, "also upload to this Hub repo id (needs a token)")
    onnx: str | None = option(None, "instead: an avatar file (.safetensors) whose generator to write as ONNX, "
                              "beside it with the suffix .onnx (needs pip install 'talking-head[onnx]')")


@torch.no_grad()
def half_precision_error(model: TalkingHeadModel, exported: TalkingHeadModel, samples: int = 4) -> float:
    """Largest |G_fp32 - G_exported| over random landmark-like inputs, in [-1, 1] image units."""
    generator = torch.Generator().manual_seed(0)
    size = model.config.image_size
    frames = torch.rand(samples, 3, size, size, generator=generator) * 2 - 1
    drawings = (torch.rand(samples, 3, size, size, generator=generator) > 0.97).float() * 2 - 1
    outputs = []
    for m in (model.eval(), exported.eval()):
        embedding = m.embedder.embed_person(frames, drawings)
        outputs.append(m.generator(drawings, embedding, warped=frames if m.config.texture_path else None))
    return (outputs[0] - outputs[1]).abs().max().item()


def training_step(checkpoint: str | Path) -> int | None:
    """The meta-learning step a training checkpoint was saved at (None for a plain weights folder)."""
    state = Path(checkpoint) / STATE_FILE
    if not state.is_file():
        return None
    with safe_open(str(state), framework="pt") as f:
        return int(f.metadata()["step"])


def without_paths(value: Any) -> Any:
    """``value`` (a provenance record) with every absolute path cut to its last part: a shipped or pushed config
    says which run folder and data set, never where they lay on the machine that trained it."""
    if isinstance(value, dict):
        return {key: without_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_paths(item) for item in value]
    if isinstance(value, str) and (PurePosixPath(value).is_absolute() or PureWindowsPath(value).drive):
        return PureWindowsPath(value).name if PureWindowsPath(value).drive else PurePosixPath(value).name
    return value


def write_weights(model: TalkingHeadModel, out: str | Path, dtype: torch.dtype) -> Path:
    """Write ``model`` into the weights folder ``out`` in ``dtype``, replacing its networks and config and keeping its
    model card (README.md) if it has one."""
    out = Path(out)
    card = out / "README.md"
    kept_card = card.read_text() if card.is_file() else None
    for name in [*NETWORK_FILES.values(), MOUTH_FILE, "config.json"]:
        (out / name).unlink(missing_ok=True)
    save_model(model, out, dtype)
    if kept_card is not None:
        card.write_text(kept_card)
    return out


def absolute_paths(value: Any) -> list[str]:
    """Every absolute path (POSIX or Windows) in ``value``, a record of dicts, lists and strings, standing alone or
    as a word of a longer string (``"train --data /home/me/data"``)."""
    if isinstance(value, dict):
        return [path for item in value.values() for path in absolute_paths(item)]
    if isinstance(value, list):
        return [path for item in value for path in absolute_paths(item)]
    if not isinstance(value, str):
        return []
    words = [value, *value.replace("=", " ").split()]
    return sorted({word for word in words if PurePosixPath(word).is_absolute() or PureWindowsPath(word).drive})


def export(options: ExportOptions) -> tuple[Path, float]:
    """The checkpoint as a shippable folder, and G's largest output difference from float32 in it. Refused (a
    ValueError, nothing written) where its config would still record a path of this machine."""
    model = TalkingHeadModel.from_pretrained(options.checkpoint)
    model.provenance = without_paths(model.provenance)
    left = absolute_paths({"model": model.config.to_dict(), "provenance": model.provenance})
    if left:
        raise ValueError(f"refusing to export {options.checkpoint}: its config.json would record this machine's "
                         f"paths {', '.join(left)}; remove them from its provenance first")
    step = training_step(options.checkpoint)
    if step is not None:  # config.json then says which step the shipped weights are
        model.provenance["step"] = step
    out = write_weights(model, options.out, getattr(torch, options.dtype))
    error = half_precision_error(model, TalkingHeadModel.from_pretrained(out))
    if options.push_to_hub:  # the folder exactly as exported: half-precision files and the model card
        from huggingface_hub import create_repo, upload_folder

        create_repo(options.push_to_hub, exist_ok=True)
        upload_folder(repo_id=options.push_to_hub, folder_path=out, commit_message="talking-head export")
    return out, error


def export_avatar_onnx(avatar_path: str | Path) -> Path:
    """An avatar's generator, psi baked in, as ``AVATAR.onnx``: inputs landmark images (+ warped shots) at the
    model's resolution, outputs the painting (+ mask); the model config is in the graph's metadata."""
    from talking_head.avatar import Avatar
    from talking_head.onnx_backend import export_onnx

    avatar_path = Path(avatar_path)
    return export_onnx(Avatar.load(avatar_path).generator, avatar_path.with_suffix(".onnx"), psi_as_input=False)
