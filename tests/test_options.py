"""Dataclass options -> command-line flags."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from talking_head.options import add_dataclass_arguments, dataclass_from_args, option, required


@dataclass
class Example:
    source: str = option("", "where from")
    ks: tuple[int, ...] = option((1, 8), "shot counts")
    fast: bool = option(False, "a switch")


@dataclass
class Required:
    source: str = required("where from")
    level: int = option(3, "a number")


def test_fields_become_documented_flags_and_round_trip() -> None:
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Example)
    parsed = dataclass_from_args(Example, parser.parse_args(["--source", "x", "--ks", "1", "32", "--fast"]))
    assert parsed == Example(source="x", ks=(1, 32), fast=True)
    assert "shot counts" in parser.format_help()


def test_a_field_without_default_is_a_required_flag() -> None:
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Required)
    assert dataclass_from_args(Required, parser.parse_args(["--source", "a"])) == Required("a", 3)
    with pytest.raises(SystemExit):
        parser.parse_args([])
