"""``python -m talking_head train``: meta-learn E, G and D on a dataset folder (the loop: ``talking_head.train``).

The options become one ``TrainOptions``, written into the run folder, and the loop runs from it alone (as
stylegan3 keeps its command line apart from its training loop).
"""

from __future__ import annotations

import argparse

from talking_head.options import add_dataclass_arguments, dataclass_from_args
from talking_head.train import TrainOptions, train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, TrainOptions)


def main(args: argparse.Namespace) -> None:
    print(train(dataclass_from_args(TrainOptions, args)))
