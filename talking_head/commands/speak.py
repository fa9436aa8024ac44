"""``python -m talking_head speak``: photos (or a saved avatar) + a voice (a sound file, or typed text) -> mp4."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from talking_head.commands.common import (ConsoleProgress, add_face_argument, add_model_and_render_arguments,
                                          add_shots_argument, avatar_from_args, build_pipeline, exit_on_input_error,
                                          photos_help, render_config)
from talking_head.errors import InputError
from talking_head.finetune import FinetuneConfig
from talking_head.options import add_dataclass_arguments, dataclass_from_args
from talking_head.speech.liveliness import LivelinessConfig
from talking_head.speech.tts import DEFAULT_VOICE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--photos", nargs="+", type=Path, help=photos_help())
    source.add_argument("--avatar", type=Path, help="an avatar saved by `personalize --save`")
    voice = parser.add_mutually_exclusive_group(required=True)
    voice.add_argument("--audio", type=Path, help="a recording of the voice (wav, mp3, ogg, m4a, webm; a video's "
                       "sound track too)")
    voice.add_argument("--text", help="text to say, spoken by espeak-ng (apt-get install espeak-ng)")
    parser.add_argument("--voice", default=DEFAULT_VOICE, help="espeak-ng voice for --text (en-us, en, de, fr, ...)")
    parser.add_argument("--out", type=Path, default=Path("out.mp4"), help="mp4 to write")
    add_face_argument(parser)
    add_shots_argument(parser)
    add_dataclass_arguments(parser, LivelinessConfig)
    add_model_and_render_arguments(parser)


def main(args: argparse.Namespace) -> None:
    pipe = build_pipeline(args)
    try:
        avatar = avatar_from_args(pipe, args, FinetuneConfig(steps=0))
        result = pipe.speak(avatar, args.out, args.audio, args.text, render_config(args),
                            dataclass_from_args(LivelinessConfig, args), args.voice, ConsoleProgress())
    except InputError as error:
        exit_on_input_error(error)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    video = result.render
    print(f"{video.path}: {video.num_frames} frames at {video.fps:g} fps, {video.width}x{video.height}, with the "
          f"voice; rendered in {video.seconds:.1f} s")
