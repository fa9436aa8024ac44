"""``python -m talking_head animate``: photos (or a saved avatar) + a driving video -> mp4."""

from __future__ import annotations

import argparse
from pathlib import Path

from talking_head.commands.common import (ConsoleProgress, add_face_argument, add_finetune_arguments,
                                          add_model_and_render_arguments, add_shots_argument, avatar_from_args,
                                          build_pipeline, exit_on_input_error, finetune_config,
                                          note_unused_finetuning, photos_help, render_config)
from talking_head.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--photos", nargs="+", type=Path, help=photos_help())
    source.add_argument("--avatar", type=Path, help="an avatar saved by `personalize --save` (no fine-tuning)")
    parser.add_argument("--driver", type=Path, required=True, help="driving video (its motion and audio are used)")
    parser.add_argument("--out", type=Path, default=Path("out.mp4"), help="mp4 to write")
    parser.add_argument("--save", type=Path, help="also save the personalised avatar to this .safetensors file")
    add_face_argument(parser)
    add_shots_argument(parser)
    add_model_and_render_arguments(parser)
    add_finetune_arguments(parser)


def main(args: argparse.Namespace) -> None:
    pipe = build_pipeline(args)
    try:
        if not args.avatar:
            note_unused_finetuning(finetune_config(args), render_config(args))
        avatar = avatar_from_args(pipe, args, finetune_config(args))
        if args.save and not args.avatar:
            avatar.save(args.save)
        result = pipe.animate(avatar, args.driver, args.out, render_config(args), ConsoleProgress())
    except InputError as error:
        exit_on_input_error(error)
    print(f"{result.path}: {result.num_frames} frames at {result.fps:g} fps, {result.width}x{result.height}, "
          f"audio {'kept' if result.has_audio else 'none'}; personalised in {avatar.info.get('seconds', 0):.1f} s, "
          f"rendered in {result.seconds:.1f} s")
