"""``python -m talking_head evaluate``: the few-shot self-reenactment protocol, on synthetic held-out identities
or a dataset folder (``talking_head.evaluate``, reported by ``talking_head.evaluate_report``), or on recordings
of one's own (``--clip``: ``talking_head.evaluate_clip``, reported by ``talking_head.evaluate_clip_report``)."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

from talking_head import evaluate, evaluate_report
from talking_head.commands.common import exit_on_input_error
from talking_head.errors import InputError
from talking_head.evaluate import EvaluateOptions
from talking_head.evaluate_clip import ClipOptions
from talking_head.options import add_dataclass_arguments, dataclass_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, EvaluateOptions)
    add_dataclass_arguments(parser, ClipOptions)


def main(args: argparse.Namespace) -> None:
    clip = dataclass_from_args(ClipOptions, args)
    if not clip.clip:
        options = dataclass_from_args(EvaluateOptions, args)
        evaluation = evaluate.evaluate(options)
        evaluate_report.write_report(Path(options.out), evaluation)
        print(evaluate_report.results_table(evaluation.rows))
        print(evaluate_report.comparison_table(evaluation.rows))
        print(f"written to {options.out}/results.md, results.json and plots")
        return
    try:
        evaluate_clips(dataclass_from_args(EvaluateOptions, args), clip)
    except InputError as error:
        exit_on_input_error(error)


def evaluate_clips(options: EvaluateOptions, clip: ClipOptions) -> None:
    """``--clip``: the protocol on each clip (pooled), the table printed and written to ``options.out``."""
    import torch

    from talking_head.errors import WeightsError, WeightsNotFoundError
    from talking_head.evaluate_clip import evaluate_clips as measure
    from talking_head.evaluate_clip_report import results_table, write_report
    from talking_head.finetune import FinetuneConfig
    from talking_head.pipeline import TalkingHeadPipeline

    if options.threads:
        torch.set_num_threads(options.threads)
    finetune = FinetuneConfig(lr_generator=options.lr_generator, batch_size=options.batch_size, seed=options.seed,
                              device=options.device, networks="mouth" if clip.model == "mouth" else "face")
    try:
        pipe = TalkingHeadPipeline.from_pretrained(options.weights, device=options.device)
    except (WeightsNotFoundError, WeightsError) as error:
        exit_on_input_error(error)
    began = time.monotonic()
    result = measure(pipe, [Path(c) for c in clip.clip], tuple(options.ks), tuple(options.steps), finetune, clip)
    seconds = time.monotonic() - began
    header = (f"Clips: {', '.join(Path(c).name for c in clip.clip)}; weights: {pipe.weights}; model: warp + "
              f"{'mouth-window G' if clip.model == 'mouth' else 'G'}; retarget "
              f"{clip.retarget}, {clip.output_size} px; measured in {seconds / 60:.1f} min on "
              f"{torch.get_num_threads()} CPU thread(s).")
    paths = write_report(Path(options.out), result, header, {
        "weights": pipe.weights, "seconds": round(seconds, 1),
        "options": {**asdict(clip), "ks": list(options.ks), "steps": list(options.steps),
                    "finetune": {k: v for k, v in asdict(finetune).items() if k not in ("vgg19", "vggface")}}})
    print(results_table(result.rows))
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"written: {', '.join(str(p) for p in paths)}")
