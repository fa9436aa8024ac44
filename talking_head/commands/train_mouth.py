"""``python -m talking_head train-mouth``: meta-learn the mouth-window generator on synthetic videos, and with
``--install`` put it into a weights folder (half precision, beside E, G and D; the folder's model card kept)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from talking_head.commands.common import exit_on_input_error
from talking_head.config import mouth_model
from talking_head.errors import InputError
from talking_head.export import without_paths, write_weights
from talking_head.models.talking_head_model import TalkingHeadModel, load_network
from talking_head.models import Generator
from talking_head.mouth_training import MouthTrainOptions, train_mouth
from talking_head.options import add_dataclass_arguments, dataclass_from_args


def install(generator_file: Path, weights: str | Path, options: MouthTrainOptions) -> Path:
    """The weights folder ``weights`` with the mouth generator in ``generator_file`` added (or replaced)."""
    model = TalkingHeadModel.from_pretrained(str(weights))
    model.mouth = Generator(mouth_model(model.config))
    load_network(model.mouth, generator_file)
    trained = without_paths(dataclasses.asdict(options))
    if options.start == "weights" and "mouth" in model.provenance:  # the stages before this one, kept
        trained["started_from"] = model.provenance["mouth"]
    model.provenance["mouth"] = trained
    return write_weights(model, weights, torch.float16)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, MouthTrainOptions)
    parser.add_argument("--install", metavar="WEIGHTS", help="add the trained mouth generator to this weights folder")


def main(args: argparse.Namespace) -> None:
    options = dataclass_from_args(MouthTrainOptions, args)
    try:
        generator_file = train_mouth(options)
    except InputError as error:
        exit_on_input_error(error)
    print(install(generator_file, args.install, options) if args.install else generator_file)
