"""``python -m talking_head export``: a training checkpoint -> a shippable weights folder or Hub repo, or with
``--onnx`` a saved avatar's generator as an ONNX graph (the work: ``talking_head.export``)."""

from __future__ import annotations

import argparse

from talking_head.export import ExportOptions, export, export_avatar_onnx
from talking_head.options import add_dataclass_arguments, dataclass_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, ExportOptions)


def main(args: argparse.Namespace) -> None:
    options = dataclass_from_args(ExportOptions, args)
    if options.onnx:
        print(f"{export_avatar_onnx(options.onnx)}: the avatar's generator as ONNX (psi baked in)")
        return
    out, error = export(options)
    size = sum(p.stat().st_size for p in out.iterdir() if p.suffix == ".safetensors") / 2**20
    print(f"{out}: {size:.1f} MiB of weights; largest output difference from the float32 model: {error:.2e}")
