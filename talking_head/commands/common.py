"""Options every pipeline command shares, and the pipeline they build."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, TextIO

from tqdm import tqdm

from talking_head.face_render import unused_finetuning
from talking_head.finetune import FinetuneConfig
from talking_head.limits import Limits
from talking_head.options import add_dataclass_arguments, dataclass_from_args, option
from talking_head.render import RenderConfig

if TYPE_CHECKING:
    from talking_head.avatar import Avatar
    from talking_head.pipeline import TalkingHeadPipeline

logger = logging.getLogger(__name__)

#: Fine-tuning's flags whose field names the render takes (its ``--batch-size`` is frames generated at once).
FINETUNE_RENAMED = {"batch_size": "finetune_batch_size"}


@dataclass
class LandmarkOptions:
    landmarks: str = option("auto", "landmark backend (auto: dlib; face_alignment downloads and unpickles its "
                            "author's weights)", choices=["auto", "face_alignment", "dlib"])


@dataclass
class ModelOptions(LandmarkOptions):
    weights: str | None = option(None, "checkpoint folder or Hub repo id (default: TALKING_HEAD_REPO, then the "
                                 "bundled checkpoints/)")
    revision: str | None = option(None, "Hub revision (branch, tag or commit) to pin")
    device: str = option("auto", "auto, cpu, cuda, ...")


def add_model_and_render_arguments(parser: argparse.ArgumentParser, render: bool = True) -> None:
    add_dataclass_arguments(parser, ModelOptions)
    if render:
        add_dataclass_arguments(parser, RenderConfig)


def build_pipeline(args: argparse.Namespace):
    """The pipeline on the weights asked for; weights that cannot be had end the command like bad input."""
    from talking_head.device import describe_rendering
    from talking_head.errors import WeightsError, WeightsNotFoundError
    from talking_head.pipeline import TalkingHeadPipeline

    o = dataclass_from_args(ModelOptions, args)
    try:
        pipe = TalkingHeadPipeline.from_pretrained(o.weights, o.revision, o.device, o.landmarks)
    except (WeightsNotFoundError, WeightsError) as error:
        exit_on_input_error(error)
    print(f"weights: {pipe.weights}; generator: {describe_rendering(pipe.device)}", file=sys.stderr)
    return pipe


def photos_help() -> str:
    """``--photos``' help, with the number of photos this process accepts (``Limits.max_shots``, which the
    environment may change)."""
    return f"1 to {Limits.from_env().max_shots} photos of one person, or clips of them (each gives --shots frames)"


def add_face_argument(parser: argparse.ArgumentParser) -> None:
    """``--face N``: which face of a photo with several (``TalkingHeadPipeline.prepare_shots``)."""
    parser.add_argument("--face", type=int, default=1, metavar="N",
                        help="where a photo holds several faces, use face N by size (1 = the largest)")


def add_shots_argument(parser: argparse.ArgumentParser) -> None:
    """``--shots K``: how many frames a clip among ``--photos`` gives (``talking_head.clip_shots``)."""
    from talking_head.clip_shots import ClipShotsConfig

    parser.add_argument("--shots", type=int, default=ClipShotsConfig.shots, metavar="K",
                        help="a video file among --photos gives K frames, chosen to cover its head poses and mouth "
                             "shapes, each sharp (default %(default)s; see docs/clip_shots.md)")


def render_config(args: argparse.Namespace) -> RenderConfig:
    return dataclass_from_args(RenderConfig, args)


def note_unused_finetuning(finetune: FinetuneConfig, render: RenderConfig) -> None:
    """Fine-tuning trains the generator; without ``--generator`` the frames are the warp, which it never changes."""
    note = unused_finetuning(finetune.steps, render.generator, render.mouth)
    if note:
        print(f"note: {note} (--generator)", file=sys.stderr)


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    """Every fine-tuning option; its device is the pipeline's ``--device`` (``ModelOptions``)."""
    add_dataclass_arguments(parser, FinetuneConfig, renamed=FINETUNE_RENAMED, shared={"device"})


def finetune_config(args: argparse.Namespace) -> FinetuneConfig:
    return dataclass_from_args(FinetuneConfig, args, renamed=FINETUNE_RENAMED)


def avatar_from_args(pipe: TalkingHeadPipeline, args: argparse.Namespace, finetune: FinetuneConfig) -> Avatar:
    """The avatar a command drives: ``--avatar`` loaded as saved, or ``--photos`` (``--face``, ``--shots``)
    personalised as ``finetune`` says, with its notes on stderr (the faces a photo held and which was used, the
    frames a clip gave and why), the same for every command that takes either."""
    from talking_head.avatar import Avatar

    if args.avatar:
        return Avatar.load(args.avatar, pipe.device)
    avatar = pipe.personalize(args.photos, progress=ConsoleProgress(), finetune=finetune, face=args.face,
                              shots=args.shots)
    for note in avatar.info["notes"]:
        print(f"note: {note}", file=sys.stderr)
    return avatar


class ConsoleProgress:
    """A command's ``Progress``: tqdm's bar on stderr (per cent done, what is happening, time spent and left) when
    stderr is a terminal, nothing when it is not (a log file or a pipe gets no carriage returns). A stage that
    reaches 1 closes its bar; the next stage opens a new one."""

    def __init__(self, file: TextIO | None = None) -> None:
        self.file = file or sys.stderr
        self.bar: tqdm | None = None

    def __call__(self, fraction: float, text: str) -> None:
        if self.bar is None:
            self.bar = tqdm(total=100, file=self.file, disable=None, dynamic_ncols=True, leave=True,
                            bar_format="{percentage:5.1f}% |{bar}| {desc} [{elapsed}<{remaining}]")
        self.bar.set_description_str(text, refresh=False)
        self.bar.update(min(100.0, max(0.0, fraction * 100)) - self.bar.n)
        if fraction >= 1:
            self.bar.close()
            self.bar = None


def exit_on_input_error(error: Exception) -> NoReturn:
    """Bad input ends the command with its message and exit status 2, not a traceback."""
    print(f"error: {error}", file=sys.stderr)
    raise SystemExit(2)
