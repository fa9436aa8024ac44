"""Typed configuration for every concern: model sizes, fine-tuning, training and rendering.

Sizes are *named* (``paper``, ``small``, ``tiny``) so that no width or resolution is scattered through
the code; every checkpoint stores the ``ModelConfig`` it was built from, so a folder of weights is
self-describing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

#: The shot counts K of the paper's tables: what ``compare`` and ``evaluate`` (the CLI, the app, the pipeline) run
#: unless asked otherwise.
PAPER_KS = (1, 8, 32)


def ks_text(ks: tuple[int, ...] = PAPER_KS, separator: str = ", ") -> str:
    """``(1, 8, 32)`` -> ``"1, 8, 32"``: K values as a person types and reads them."""
    return separator.join(str(k) for k in ks)


@dataclass(frozen=True)
class ModelConfig:
    """Shapes of the embedder E, generator G and discriminator D.

    A feature map at resolution ``r`` has ``channels_at(r)`` channels in every network (doubling as the
    resolution halves, capped at ``max_channels``), so one pair of numbers sizes all three. With the
    paper's numbers this reproduces its widths: 64 channels at 128x128 up to 512 at 16x16.
    """

    image_size: int = 128
    embedding_dim: int = 512
    base_channels: int = 32
    max_channels: int = 256
    #: E and D downsample until this resolution, then sum-pool (the paper: 256 -> 4).
    encoder_min_resolution: int = 4
    #: G downsamples to this resolution, runs its AdaIN residual blocks there, then upsamples back.
    generator_bottleneck_resolution: int = 16
    generator_res_blocks: int = 5
    #: Resolutions where self-attention sits (E and D on the way down, G on the way down and up).
    attention_resolutions: tuple[int, ...] = (32,)
    #: Number of training videos: the columns of D's projection matrix W.
    num_videos: int = 1
    landmark_channels: int = 3
    image_channels: int = 3
    #: G's texture path: G also sees the K shots warped onto the target's landmarks and outputs a mask
    #: that blends them with what it paints (``talking_head.warp``). False is the paper's G, which
    #: synthesizes every pixel from the landmark image and psi (the faithful reproduction).
    texture_path: bool = False

    def channels_at(self, resolution: int) -> int:
        return max(1, min(self.max_channels, self.base_channels * self.image_size // (2 * resolution)))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["attention_resolutions"] = list(self.attention_resolutions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {sorted(unknown)}")
        data = dict(data)
        if "attention_resolutions" in data:
            data["attention_resolutions"] = tuple(data["attention_resolutions"])
        return cls(**data)

    @classmethod
    def named(cls, name: str, **overrides: Any) -> "ModelConfig":
        try:
            base = MODEL_SIZES[name]
        except KeyError:
            raise ValueError(f"unknown model size {name!r}; choose one of {sorted(MODEL_SIZES)}") from None
        return cls(**{**base.to_dict(), **overrides, "attention_resolutions": tuple(
            overrides.get("attention_resolutions", base.attention_resolutions))})


MODEL_SIZES: dict[str, ModelConfig] = {
    # The paper: 256x256, widths 64 -> 512, G bottleneck at 16x16 with 5 AdaIN residual blocks,
    # self-attention at 32x32 (E, D and G's down path) and 64x64 (G's up path).
    "paper": ModelConfig(
        image_size=256, embedding_dim=512, base_channels=64, max_channels=512,
        encoder_min_resolution=4, generator_bottleneck_resolution=16, generator_res_blocks=5,
        attention_resolutions=(32, 64), texture_path=False,
    ),
    # The bundled default: 128x128 and narrow enough to render in real time on a 2-core CPU, with the
    # texture path (a model trained for hours on a CPU cannot synthesize a real person's every pixel).
    "small": ModelConfig(
        image_size=128, embedding_dim=256, base_channels=32, max_channels=256,
        encoder_min_resolution=4, generator_bottleneck_resolution=16, generator_res_blocks=4,
        attention_resolutions=(32,), texture_path=True,
    ),
    # Unit tests: seconds on a CPU.
    "tiny": ModelConfig(
        image_size=32, embedding_dim=32, base_channels=16, max_channels=64,
        encoder_min_resolution=4, generator_bottleneck_resolution=8, generator_res_blocks=1,
        attention_resolutions=(16,), texture_path=True,
    ),
}

#: The mouth-window generator (``talking_head.mouth_window``): the paper's AdaIN G on the texture path, at the
#: size of a mouth's window (64 px, about the native window of a 256 px output) and narrow (12 to 48 channels),
#: modulated by the same person embedding as the face's G (``mouth_model`` sets ``embedding_dim`` to the weights').
MOUTH_MODEL = ModelConfig(
    image_size=64, embedding_dim=256, base_channels=24, max_channels=128,
    encoder_min_resolution=4, generator_bottleneck_resolution=16, generator_res_blocks=2,
    attention_resolutions=(), texture_path=True,
)


def mouth_model(face: ModelConfig) -> ModelConfig:
    """The mouth generator of weights whose embedder is ``face``'s: ``MOUTH_MODEL`` modulated by its embeddings."""
    return replace(MOUTH_MODEL, embedding_dim=face.embedding_dim)
