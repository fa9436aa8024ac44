"""An avatar: one person, personalised once, animated many times; saved as a single safetensors file.

The file holds the personal generator (G' with spectral norm baked in, psi', e_new) and what
rendering needs from the photos: the reference face crop and its landmarks (retargeting keeps this
face's shape), the first photo with the crop's place in it (for pasting the face back) and, on the
texture path, the K shots as ``BANK_IMAGE_SIZE`` crops (the face's ``BANK_SIZE`` crop and a margin of
the photo around it) with their landmarks: the texture bank the warp copies from. Nothing in it can execute code, and it renders without the meta-learned model.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from talking_head.config import MODEL_SIZES, ModelConfig, mouth_model
from talking_head.errors import InputError
from talking_head.landmarks.align import CropBox
from talking_head.limits import Limits
from talking_head.models import PersonalGenerator
from talking_head.shot_bank import BANK_IMAGE_SIZE
from talking_head.tensors import images_to_tensor

#: v2 added the texture bank; v1 files (pure-synthesis generators, no bank) still load.
AVATAR_FORMAT = "talking-head-avatar-v2"
READABLE_FORMATS = ("talking-head-avatar-v1", AVATAR_FORMAT)


@dataclass
class Avatar:
    generator: PersonalGenerator
    source_crop: np.ndarray  # (S, S, 3) uint8: the first photo's face crop
    source_landmarks: np.ndarray  # (68, 2) float32, in crop pixels
    photo: np.ndarray  # (H, W, 3) uint8: the first photo, for pasting the face back
    photo_box: CropBox  # the crop's (x0, y0, side) in the photo's pixels
    info: dict[str, Any] = field(default_factory=dict)  # K, steps, weights, timings
    bank_crops: np.ndarray | None = None  # (K, S, S, 3) uint8: the shots, cropped like source_crop
    bank_landmarks: np.ndarray | None = None  # (K, 68, 2) float32, in bank pixels
    mouth: PersonalGenerator | None = None  # the person's mouth-window generator (``talking_head.mouth_window``)

    def __post_init__(self) -> None:
        if self.generator.config.texture_path and (self.bank_crops is None or self.bank_landmarks is None):
            raise ValueError("a texture-path avatar needs its texture bank (bank_crops, bank_landmarks)")

    @property
    def image_size(self) -> int:
        return self.generator.config.image_size

    @property
    def texture_path(self) -> bool:
        return self.generator.config.texture_path

    @functools.cached_property
    def bank_images(self) -> torch.Tensor:
        """The bank as (K, 3, S, S) in [-1, 1], converted once (every rendered batch warps from it)."""
        return images_to_tensor(self.bank_crops)

    def save(self, path: str | Path) -> Path:
        """Write the avatar atomically (a crash never leaves a half-written file under ``path``)."""
        path = Path(path)
        tensors = {f"generator.{k}": v.detach().cpu().contiguous() for k, v in self.generator.state_dict().items()}
        tensors.update({
            "source_crop": torch.from_numpy(np.array(self.source_crop, dtype=np.uint8)),
            "source_landmarks": torch.from_numpy(np.ascontiguousarray(self.source_landmarks, dtype=np.float32)),
            "photo": torch.from_numpy(np.array(self.photo, dtype=np.uint8)),
            "photo_box": torch.tensor(self.photo_box, dtype=torch.float64),
        })
        if self.bank_crops is not None and self.bank_landmarks is not None:
            tensors["bank_crops"] = torch.from_numpy(np.ascontiguousarray(self.bank_crops, dtype=np.uint8))
            tensors["bank_landmarks"] = torch.from_numpy(np.ascontiguousarray(self.bank_landmarks, dtype=np.float32))
        metadata = {"format": AVATAR_FORMAT, "config": json.dumps(self.generator.config.to_dict()),
                    "info": json.dumps(self.info)}
        if self.mouth is not None:
            tensors.update({f"mouth.{k}": v.detach().cpu().contiguous() for k, v in self.mouth.state_dict().items()})
            metadata["mouth"] = json.dumps(self.mouth.config.to_dict())
        partial = path.with_name(path.name + ".partial")
        save_file(tensors, str(partial), metadata=metadata)
        os.replace(partial, path)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "Avatar":
        """Read an avatar saved by :meth:`save`, checking everything it claims before anything is
        allocated for it: a shared file is untrusted input (a 572-byte file claiming a generator 2048
        channels wide once grew a server by 3 GB). The config must be a known model size, every
        tensor's name, dtype and shape must fit it (read from the header, before the data), and the
        paste-back photo, crop box and landmarks must be sane. Every problem is an :class:`InputError`
        naming it."""
        path = Path(path)
        name = path.name
        _check_header_size(path)
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                if metadata.get("format") not in READABLE_FORMATS:
                    raise InputError(f"{name!r} is not a talking-head avatar (format "
                                     f"{_shorten(repr(metadata.get('format')))}, expected {AVATAR_FORMAT!r})")
                config, info = _read_config(metadata, name), _read_info(metadata, name)
                mouth = _read_mouth(metadata, config, name)
                _check_tensor_layout({k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype())
                                      for k in f.keys()}, config, mouth, name)
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError) as error:
            raise InputError(f"avatar file {name!r} is damaged or not a safetensors file ({error})") from error
        arrays = {k: v.numpy() for k, v in tensors.items() if not k.startswith(("generator.", "mouth."))}
        box = _check_paste_back(arrays, config, name)
        generator = _personal_generator(config, tensors, "generator.").to(device)
        mouth_generator = _personal_generator(mouth, tensors, "mouth.").to(device) if mouth else None
        return cls(generator, arrays["source_crop"], arrays["source_landmarks"], arrays["photo"], box, info,
                   arrays.get("bank_crops"), arrays.get("bank_landmarks"), mouth_generator)


def _personal_generator(config: ModelConfig, tensors: dict[str, torch.Tensor], prefix: str) -> PersonalGenerator:
    """The personal generator of ``config`` whose weights are ``tensors`` named with ``prefix``."""
    generator = PersonalGenerator(config)
    state = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
    generator.load_state_dict(state, strict=True)  # names and shapes were checked against this config
    return generator.eval()


# ---------------------------------------------------------------------------------------------------
# What Avatar.load checks
# ---------------------------------------------------------------------------------------------------

#: safetensors' header (tensor names, shapes, the config and info) may be up to 100 MB, parsed whole by
#: the library; an avatar's is a few tens of kB, so anything much larger is refused unread.
MAX_HEADER_BYTES = 1 << 20
#: What ``info`` may hold and the type of each; other fields are dropped (they are only shown).
INFO_FIELDS: dict[str, type | tuple[type, ...]] = {"k": int, "steps": int, "seconds": (int, float), "weights": str,
                                                   "device": str, "notes": list, "finetune": dict}
#: The types a fine-tuning option in ``info["finetune"]`` may have.
OPTION_TYPES = (str, int, float, bool, type(None))
#: The paste-back photo decides the output's width in proportion to its height (panoramas beyond this are
#: refused: a 2 x 4000 px photo once made 512 000 px wide frames).
MAX_PHOTO_ASPECT = 8.0
#: The paste-back photo is kept at most this large inside an avatar file (the pipeline cuts it around the face to
#: this, at the photo's own resolution: ``render.photo_window``).
MAX_PASTE_PHOTO_SIDE = 1024
#: Floating-point dtypes the generator's weights may be stored in (they load into float32).
WEIGHT_DTYPES = ("F32", "F16", "BF16")


def _shorten(text: str, limit: int = 60) -> str:
    """Text from an untrusted file, cut to ``limit`` characters for a message."""
    return text if len(text) <= limit else text[:limit] + "..."


def _check_header_size(path: Path) -> None:
    if not path.is_file() or path.stat().st_size == 0:
        raise InputError(f"avatar file {path.name!r} is missing or empty")
    with path.open("rb") as file:
        prefix = file.read(8)
    if len(prefix) < 8 or int.from_bytes(prefix, "little") > MAX_HEADER_BYTES:
        raise InputError(f"avatar file {path.name!r} is damaged or not a safetensors file (its header is "
                         f"{'cut short' if len(prefix) < 8 else 'larger than an avatar header can be'})")


def _json_field(metadata: dict[str, str], key: str, name: str) -> Any:
    try:
        return json.loads(metadata[key])
    except KeyError:
        raise InputError(f"avatar file {name!r} has no {key} (it was not saved by talking-head)") from None
    except json.JSONDecodeError as error:
        raise InputError(f"avatar file {name!r} has a {key} that is not valid JSON ({error})") from None


def _read_config(metadata: dict[str, str], name: str) -> ModelConfig:
    """The generator's config, only if it is one of the known model sizes (``MODEL_SIZES``) with its
    fields of their own types: the sizes every shipped and trained model has, each of a known cost."""
    data = _json_field(metadata, "config", name)
    if not isinstance(data, dict):
        raise InputError(f"avatar file {name!r} has a config that is not a JSON object")
    try:
        config = ModelConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        raise InputError(f"avatar file {name!r} has an invalid config ({_shorten(str(error), 200)})") from None
    defaults = ModelConfig()
    for item in fields(ModelConfig):
        value = getattr(config, item.name)
        if type(value) is not type(getattr(defaults, item.name)) or (
                isinstance(value, tuple) and any(type(v) is not int for v in value)):
            raise InputError(f"avatar file {name!r} has a config whose {item.name} is {_shorten(repr(value))}, "
                             f"not of the type {type(getattr(defaults, item.name)).__name__}")
    if _generator_shape(config) not in {_generator_shape(size) for size in MODEL_SIZES.values()}:
        raise InputError(f"avatar file {name!r} was made for a generator of unknown size; this version reads avatars "
                         f"of the {', '.join(MODEL_SIZES)} model sizes")
    return config


def _read_mouth(metadata: dict[str, str], config: ModelConfig, name: str) -> ModelConfig | None:
    """The mouth generator's config: none, or exactly the one this version makes for ``config`` (``mouth_model``)."""
    if "mouth" not in metadata:
        return None
    expected = mouth_model(config)
    if _json_field(metadata, "mouth", name) != expected.to_dict():
        raise InputError(f"avatar file {name!r} has a mouth generator of another size than this version's")
    return expected


def _generator_shape(config: ModelConfig) -> ModelConfig:
    """The fields that size a personal generator: not D's ``num_videos``, nor the texture path (a G of
    either kind comes in every size)."""
    return replace(config, num_videos=1, texture_path=False)


def _read_info(metadata: dict[str, str], name: str) -> dict[str, Any]:
    """The known fields of ``info``, each of its type (they are shown to whoever loads the avatar)."""
    info = _json_field(metadata, "info", name) if "info" in metadata else {}
    if not isinstance(info, dict):
        raise InputError(f"avatar file {name!r} has an info that is not a JSON object")
    for key, kind in INFO_FIELDS.items():
        value = info.get(key)
        if key in info and (isinstance(value, bool) or not isinstance(value, kind) or (
                key == "notes" and not all(isinstance(note, str) for note in value)) or (
                key == "finetune" and not all(isinstance(option, OPTION_TYPES) for option in value.values()))):
            raise InputError(f"avatar file {name!r} has an info field {key!r} of the wrong type "
                             f"({_shorten(repr(value))})")
    return {key: value for key, value in info.items() if key in INFO_FIELDS}


@functools.lru_cache(maxsize=None)
def _generator_tensors(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of a personal generator of ``config`` (a known size, so bounded)."""
    return {k: tuple(v.shape) for k, v in PersonalGenerator(config).state_dict().items()}


#: Tensor name -> (shape, dtype) as a safetensors header lists them.
Header = dict[str, tuple[tuple[int, ...], str]]
#: Tensor name -> (shape, dtypes allowed); shape None: checked apart.
Layout = dict[str, tuple[tuple[int, ...] | None, tuple[str, ...]]]


def _expected_layout(config: ModelConfig, mouth: ModelConfig | None, found: Header) -> Layout:
    """Every tensor an avatar of ``config`` (and ``mouth``) holds; the texture bank's K is taken from ``found``."""
    size, side = config.image_size, BANK_IMAGE_SIZE
    layout: Layout = {f"generator.{k}": (shape, WEIGHT_DTYPES)
                      for k, shape in _generator_tensors(replace(config, num_videos=1)).items()}
    if mouth is not None:
        layout.update({f"mouth.{k}": (shape, WEIGHT_DTYPES) for k, shape in _generator_tensors(mouth).items()})
    layout.update({"source_crop": ((size, size, 3), ("U8",)), "source_landmarks": ((68, 2), ("F32",)),
                   "photo": (None, ("U8",)), "photo_box": ((3,), ("F64",))})
    if config.texture_path or "bank_crops" in found or "bank_landmarks" in found:
        crops = found.get("bank_crops", ((), ""))[0]
        max_shots = Limits.from_env().max_shots  # an avatar this process could not have made is refused
        shots = crops[0] if crops and 1 <= crops[0] <= max_shots else -1  # -1: reported as a malformed bank
        layout.update({"bank_crops": ((shots, side, side, 3), ("U8",)), "bank_landmarks": ((shots, 68, 2), ("F32",))})
    return layout


def _check_tensor_layout(found: Header, config: ModelConfig, mouth: ModelConfig | None, name: str) -> None:
    """Every tensor the header lists, by name, dtype and shape, against what the configs make (nothing read yet)."""
    layout = _expected_layout(config, mouth, found)
    for key, (shape, dtypes) in layout.items():
        if key in found and found[key][1] in dtypes and (shape is None or found[key][0] == shape):
            continue
        if key.startswith("bank_"):
            raise InputError(f"avatar file {name!r} has a malformed texture bank (need K {BANK_IMAGE_SIZE}x"
                             f"{BANK_IMAGE_SIZE} RGB shots and their (K, 68, 2) landmarks)")
        what = "is missing" if key not in found else f"is {found[key][1]} {list(found[key][0])}"
        want = "an (H, W, 3) U8 photo" if shape is None else f"{'/'.join(dtypes)} {list(shape)}"
        raise InputError(f"avatar file {name!r} does not match its own config: {_shorten(repr(key))} {what}, "
                         f"expected {want}")
    unknown = sorted(set(found) - set(layout))
    if unknown:
        raise InputError(f"avatar file {name!r} holds tensors an avatar has not: {_shorten(repr(unknown), 120)}")
    _check_photo_shape(found["photo"][0], name)


def _check_photo_shape(shape: tuple[int, ...], name: str) -> None:
    if len(shape) != 3 or shape[2] != 3 or not 2 <= min(shape[:2]) <= max(shape[:2]) <= MAX_PASTE_PHOTO_SIDE or (
            max(shape[:2]) > MAX_PHOTO_ASPECT * min(shape[:2])):
        raise InputError(f"avatar file {name!r} has a paste-back photo of shape {list(shape)}; expected an RGB photo "
                         f"of at most {MAX_PASTE_PHOTO_SIDE} px a side and {MAX_PHOTO_ASPECT:g}:1")


def _check_paste_back(arrays: dict[str, np.ndarray], config: ModelConfig, name: str) -> CropBox:
    """The crop box lies on the photo, no larger than a few times it; the landmarks lie near their crops."""
    height, width = arrays["photo"].shape[:2]
    x0, y0, side = (float(v) for v in arrays["photo_box"])
    if not (np.isfinite([x0, y0, side]).all() and 1 <= side <= 4 * max(height, width) and -side < x0 < width
            and -side < y0 < height):
        raise InputError(f"avatar file {name!r} has a crop box {(x0, y0, side)} that does not lie on its "
                         f"{width}x{height} photo")
    for key, size in (("source_landmarks", config.image_size), ("bank_landmarks", BANK_IMAGE_SIZE)):
        points = arrays.get(key)
        if points is not None and not (np.isfinite(points).all() and np.abs(points - size / 2).max() <= size):
            raise InputError(f"avatar file {name!r} has {key.replace('_', ' ')} that are not finite or lie far "
                             f"outside their {size} px crop")
    return x0, y0, side
