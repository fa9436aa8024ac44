"""Dataclass options <-> command-line flags, so every CLI's ``--help`` comes from typed, documented fields.

A field's help text is its ``metadata["help"]``; nested dataclasses become prefixed flags
(``LossWeights.adversarial`` -> ``--loss-adversarial``).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

T = TypeVar("T")
NO_RENAMES: Mapping[str, str] = MappingProxyType({})


def option(default: Any, help: str, **kwargs: Any) -> Any:  # noqa: A002 - mirrors argparse's name
    """A dataclass field with a help text (``default_factory`` for mutable defaults)."""
    if isinstance(default, (list, dict, set)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: default, metadata={"help": help, **kwargs})
    return dataclasses.field(default=default, metadata={"help": help, **kwargs})


def required(help: str) -> Any:  # noqa: A002
    """A dataclass field with no default: its flag is required, and argparse says so."""
    return dataclasses.field(metadata={"help": help})


def _base_type(annotation: Any) -> tuple[type, bool]:
    """(scalar type, is_list) of an annotation like ``int``, ``str | None``, ``tuple[int, ...]``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0])
    if origin in (list, tuple):
        return typing.get_args(annotation)[0], True
    return annotation, False


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "",
                            renamed: Mapping[str, str] = NO_RENAMES, shared: Collection[str] = ()) -> None:
    """A flag per field of ``cls``, for two dataclasses on one parser: ``renamed`` gives a field whose name the
    other one takes a name of its own (pass it to :func:`dataclass_from_args` too); ``shared`` fields have
    no flag of their own, they take the other's flag's value (the pipeline's ``--device`` is fine-tuning's)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in shared:
            continue
        kind, is_list = _base_type(hints[f.name])
        flag = "--" + renamed.get(f.name, prefix + f.name).replace("_", "-")
        factory = f.default_factory  # type: ignore[misc]
        default = f.default if f.default is not dataclasses.MISSING else (
            factory() if factory is not dataclasses.MISSING else None)
        if dataclasses.is_dataclass(kind):
            add_dataclass_arguments(parser, kind, prefix=f"{prefix}{f.name}_")
            continue
        help_text = f.metadata.get("help", f"{kind.__name__} weight")  # the formatter appends the default
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        else:
            parser.add_argument(flag, type=kind, nargs="+" if is_list else None, default=default,
                                choices=f.metadata.get("choices"), help=help_text,
                                required=f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)  # type: ignore[misc]


def dataclass_from_args(cls: type[T], args: argparse.Namespace, prefix: str = "",
                        renamed: Mapping[str, str] = NO_RENAMES) -> T:
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        kind, is_list = _base_type(hints[f.name])
        if dataclasses.is_dataclass(kind):
            values[f.name] = dataclass_from_args(kind, args, prefix=f"{prefix}{f.name}_")
        else:
            value = getattr(args, renamed.get(f.name, prefix + f.name))
            values[f.name] = tuple(value) if is_list and typing.get_origin(hints[f.name]) is tuple else value
    return cls(**values)

