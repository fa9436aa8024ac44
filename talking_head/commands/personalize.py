"""``python -m talking_head personalize``: fine-tune on K photos once and save the avatar."""

from __future__ import annotations

import argparse
from pathlib import Path

from talking_head.commands.common import (ConsoleProgress, add_face_argument, add_finetune_arguments,
                                          add_model_and_render_arguments, add_shots_argument, build_pipeline,
                                          exit_on_input_error, finetune_config, photos_help)
from talking_head.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--photos", nargs="+", type=Path, required=True, help=photos_help())
    parser.add_argument("--save", type=Path, required=True, help="avatar file to write (.safetensors)")
    add_face_argument(parser)
    add_shots_argument(parser)
    add_model_and_render_arguments(parser, render=False)
    add_finetune_arguments(parser)


def main(args: argparse.Namespace) -> None:
    pipe = build_pipeline(args)
    try:
        avatar = pipe.personalize(args.photos, progress=ConsoleProgress(), finetune=finetune_config(args),
                                  face=args.face, shots=args.shots)
    except InputError as error:
        exit_on_input_error(error)
    avatar.save(args.save)
    notes = "; ".join(avatar.info["notes"])
    print(f"{args.save}: K={avatar.info['k']}, {avatar.info['steps']} steps, {avatar.info['seconds']:.1f} s" +
          (f" ({notes})" if notes else ""))
