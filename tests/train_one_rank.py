"""Run by torchrun in tests/test_train.py: ``python -m talking_head train ARGS`` as one rank, then this
rank's final weights to ``DUMP/rank<RANK>.safetensors``, so the test can compare the ranks' models.

Usage: torchrun ... tests/train_one_rank.py DUMP ARGS...
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from safetensors.torch import save_file

from talking_head import cli, train

models = []
training_step = train.training_step


def remember_the_model(model, *args):
    """train.training_step, noting the model it trains (train() returns only the checkpoint's path)."""
    models.append(model)
    return training_step(model, *args)


if __name__ == "__main__":
    train.training_step = remember_the_model
    cli.main(["train", *sys.argv[2:]])
    weights = {name: tensor.detach().cpu().clone() for name, tensor in models[-1].state_dict().items()}
    save_file(weights, str(Path(sys.argv[1]) / f"rank{os.environ['RANK']}.safetensors"))
