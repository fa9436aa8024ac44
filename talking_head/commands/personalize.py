"""``python -m talking_head personalize``: fine-tune on K photos once and save the avatar."""

from __future__ import annotations

import argparse
from pathlib import Path

from talking_head.commands.common import (add_model_and_render_arguments, build_pipeline, console_progress,
                                          exit_on_input_error)
from talking_head.errors import InputError
from talking_head.finetune import FinetuneConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--photos", nargs="+", type=Path, required=True, help="1 to 32 photos of one person")
    parser.add_argument("--steps", type=int, default=FinetuneConfig().steps,
                        help="fine-tuning steps (0 = feed-forward)")
    parser.add_argument("--save", type=Path, required=True, help="avatar file to write (.safetensors)")
    add_model_and_render_arguments(parser, render=False)


def main(args: argparse.Namespace) -> None:
    pipe = build_pipeline(args)
    try:
        avatar = pipe.personalize(args.photos, args.steps, console_progress)
    except InputError as error:
        exit_on_input_error(error)
    avatar.save(args.save)
    notes = "; ".join(avatar.info["notes"])
    print(f"{args.save}: K={avatar.info['k']}, {args.steps} steps, {avatar.info['seconds']:.1f} s" +
          (f" ({notes})" if notes else ""))
