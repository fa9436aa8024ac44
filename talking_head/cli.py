"""``python -m talking_head <command>``: every stage of the project from the command line.

Each command's options are a dataclass in its own module (``--help`` is generated from their typed,
documented fields); this file only wires commands to modules, importing only the module of the command
that runs: every module at once (``evaluate``'s plots and metrics, ``train``'s losses) had added 1-2 s
to the start of every command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Iterable

from talking_head.config import ks_text

#: command -> (module, one-line description). Each module has ``add_arguments(parser)`` and ``main(args)``.
COMMANDS = {
    "animate": ("talking_head.commands.animate", "photos (or a saved avatar) + a driving video -> mp4"),
    "speak": ("talking_head.commands.speak", "photos (or a saved avatar) + a voice recording or typed text -> mp4"),
    "personalize": ("talking_head.commands.personalize", "fine-tune on K photos once and save the avatar"),
    "live": ("talking_head.commands.live", "a camera (or a video file) drives a saved avatar in real time"),
    "compare": ("talking_head.commands.compare",
                f"K = {ks_text(separator='/')} side by side on one driver, with a metrics table"),
    "landmarks": ("talking_head.commands.landmarks", "the landmarks found in a photo or video, drawn over it"),
    "synthesize": ("talking_head.commands.synthesize", "render the procedural synthetic talking-head dataset"),
    "export": ("talking_head.commands.export", "training checkpoint -> shippable weights folder (half precision) or Hub repo"),
    "train": ("talking_head.commands.train", "meta-learn E, G and D on a dataset folder (resumable; torchrun for multi-GPU)"),
    "train-mouth": ("talking_head.commands.train_mouth", "meta-learn the mouth-window generator on synthetic videos "
                    "(resumable; --install adds it to a weights folder)"),
    "preprocess": ("talking_head.commands.preprocess", "crop VoxCeleb-layout videos into a dataset folder (resumable)"),
    "evaluate": (
        "talking_head.commands.evaluate",
        (f"K = {ks_text(separator='/')} self-reenactment: SSIM, PSNR, CSIM, landmark distance vs a warp baseline "
         "(--clip: on a recording, the mouth's scores, the warp beside the model)"),
    ),
}


def build_parser(commands: Iterable[str] = tuple(COMMANDS)) -> argparse.ArgumentParser:
    """The parser of every command, with the options of those in ``commands`` (their modules imported)."""
    parser = argparse.ArgumentParser(prog="python -m talking_head", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    with_options = set(commands)
    for name, (module, description) in COMMANDS.items():
        command = sub.add_parser(name, help=description, description=description,
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if name in with_options:
            importlib.import_module(module).add_arguments(command)
    return parser


def command_in(argv: list[str]) -> str | None:
    """The command ``argv`` names (its first word that is not an option), if it names one."""
    word = next((arg for arg in argv if not arg.startswith("-")), None)
    return word if word in COMMANDS else None


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    command = command_in(argv)
    args = build_parser([command] if command else []).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    importlib.import_module(COMMANDS[args.command][0]).main(args)
