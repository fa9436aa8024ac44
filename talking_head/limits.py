"""``Limits``: what one process accepts from its users, read from the environment in one place.

A server (the Space, a shared machine) caps its inputs with environment variables; the pipeline, the
CLI and the app read them through one :class:`Limits`, made by :meth:`Limits.from_env` when each is
built, not when a module is imported: a test or a long-lived process that changes a variable gets
the new limit without re-importing anything.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field


def _limit(default: float, env: str) -> float:
    """A limit's default, and the environment variable that overrides it."""
    return field(default=default, metadata={"env": env})


@dataclass(frozen=True)
class Limits:
    #: The most photos one person may bring (the paper's largest K).
    max_shots: int = _limit(32, "TALKING_HEAD_MAX_SHOTS")
    #: The longest driving video accepted, in seconds (a render may trim to it instead).
    max_video_seconds: float = _limit(60.0, "TALKING_HEAD_MAX_VIDEO_SECONDS")
    #: The largest output height: memory per frame and encoding time grow with its square.
    max_output_size: int = _limit(1024, "TALKING_HEAD_MAX_OUTPUT_SIZE")
    #: Drivers are decoded at most this many frames a second, resampled by ffmpeg: a 59 s file at
    #: 1000 fps is 1770 frames to render, not 59 000.
    max_driver_fps: float = _limit(30.0, "TALKING_HEAD_MAX_FPS")
    #: Drivers are downscaled by ffmpeg so that their long side is at most this: landmarks need no
    #: more, and a 10000x10000 frame never reaches Python.
    max_driver_side: int = _limit(1280, "TALKING_HEAD_MAX_DRIVER_SIDE")
    #: A driver whose first this-many seconds hold no face is refused there, not after rendering it all.
    face_within_seconds: float = _limit(5.0, "TALKING_HEAD_FACE_WITHIN_SECONDS")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Limits:
        """The defaults, each overridden by its variable where ``environ`` sets it."""
        values = {f.name: type(f.default)(environ[f.metadata["env"]])
                  for f in dataclasses.fields(cls) if f.metadata["env"] in environ}
        return cls(**values)
