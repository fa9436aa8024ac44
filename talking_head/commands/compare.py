"""``python -m talking_head compare``: K = 1 / 8 / 32 side by side on one driver, with a metrics table."""

from __future__ import annotations

import argparse
from pathlib import Path

from talking_head.commands.common import (ConsoleProgress, add_face_argument, add_finetune_arguments,
                                          add_model_and_render_arguments, add_shots_argument, build_pipeline,
                                          exit_on_input_error, finetune_config, note_unused_finetuning, render_config)
from talking_head.config import PAPER_KS
from talking_head.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--photos", nargs="+", type=Path, required=True, help="photos of one person, or clips of them "
                        "(each gives --shots frames; K <= shots)")
    parser.add_argument("--driver", type=Path, required=True, help="driving video")
    parser.add_argument("--ks", nargs="+", type=int, default=list(PAPER_KS), help="shot counts to compare")
    parser.add_argument("--out", type=Path, default=Path("compare.mp4"), help="side-by-side mp4 to write; the "
                        "metrics table goes next to it as .md")
    add_face_argument(parser)
    add_shots_argument(parser)
    add_model_and_render_arguments(parser)
    add_finetune_arguments(parser)  # the same for every K


def main(args: argparse.Namespace) -> None:
    pipe = build_pipeline(args)
    note_unused_finetuning(finetune_config(args), render_config(args))
    try:
        comparison = pipe.compare(args.photos, args.driver, args.out, tuple(args.ks), config=render_config(args),
                                  progress=ConsoleProgress(), finetune=finetune_config(args), face=args.face,
                                  shots=args.shots)
    except InputError as error:
        exit_on_input_error(error)
    table = args.out.with_suffix(".md")
    table.write_text(comparison.table)
    print(comparison.table)
    print(f"{comparison.path} and {table} written")
