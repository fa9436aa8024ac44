"""talking-head: few-shot adversarial talking-head models (Zakharov et al., ICCV 2019).

The public API is importable from here (``from talking_head import TalkingHeadPipeline``). Each name is
imported on first use, so ``import talking_head`` (and ``python -m talking_head --help``) stays free of
torch and the networks until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from talking_head.avatar import Avatar
    from talking_head.config import ModelConfig
    from talking_head.finetune import FinetuneConfig
    from talking_head.pipeline import TalkingHeadPipeline
    from talking_head.render import RenderConfig

#: public name -> the module that defines it
_EXPORTS = {
    "TalkingHeadPipeline": "talking_head.pipeline",
    "Avatar": "talking_head.avatar",
    "RenderConfig": "talking_head.render",
    "FinetuneConfig": "talking_head.finetune",
    "ModelConfig": "talking_head.config",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'talking_head' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
