"""``python -m talking_head`` as the README shows it: personalise once, animate many times, compare K."""

from __future__ import annotations

import argparse
import dataclasses
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from talking_head.cli import build_parser, main
from talking_head.commands.common import FINETUNE_RENAMED, ConsoleProgress, finetune_config
from talking_head.device import describe_rendering
from talking_head.finetune import FinetuneConfig
from talking_head.landmarks.rasterize import LANDMARK_PARTS
from talking_head.media import probe_video


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """Each command's parser, as ``python -m talking_head COMMAND`` builds it."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_command_has_help_for_every_option() -> None:
    for command, parser in subcommands().items():
        undocumented = [action.option_strings or [action.dest] for action in parser._actions
                        if not (action.help or "").strip()]
        assert not undocumented, (command, undocumented)
    animate = build_parser().parse_args(["animate", "--photos", "a.jpg", "--driver", "d.mp4"])
    assert finetune_config(animate) == FinetuneConfig()


@pytest.mark.parametrize("command", ["animate", "personalize", "compare"])
def test_every_finetune_option_has_a_flag(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    shown = set(re.findall(r"(?m)^\s+(--[a-z0-9-]+)", capsys.readouterr().out))
    flags = {"--" + FINETUNE_RENAMED.get(f.name, f.name).replace("_", "-") for f in dataclasses.fields(FinetuneConfig)}
    assert flags <= shown, flags - shown
    chosen = FinetuneConfig(steps=5, lr_generator=1e-3, lr_discriminator=3e-4, adversarial=0.5, batch_size=4, seed=7,
                            device="cpu", amp=False, vgg19="vgg19.safetensors", vggface="vggface.safetensors")
    given = ["--photos", "a.jpg", "--driver", "d.mp4", "--ks", "1", "--save", "a.safetensors"]
    required = {"animate": given[:4], "personalize": [*given[:2], *given[6:]], "compare": given[:6]}[command]
    args = build_parser().parse_args([command, *required, "--steps", "5", "--lr-generator", "1e-3",
                                      "--lr-discriminator", "3e-4", "--adversarial", "0.5", "--finetune-batch-size",
                                      "4", "--seed", "7", "--device", "cpu", "--no-amp", "--vgg19",
                                      "vgg19.safetensors", "--vggface", "vggface.safetensors"])
    assert finetune_config(args) == chosen


@pytest.mark.slow
def test_personalize_save_then_animate_the_avatar_and_compare(trained_tiny: Path, synthetic_photos: list[Path],
                                                              driver_video: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    avatar = tmp_path / "person.avatar.safetensors"
    weights = ["--weights", str(trained_tiny), "--landmarks", "dlib", "--device", "cpu"]
    main(["personalize", "--photos", *map(str, synthetic_photos), "--steps", "1", "--save", str(avatar), *weights])
    assert avatar.is_file()
    main(["animate", "--avatar", str(avatar), "--driver", str(driver_video), "--out", str(tmp_path / "a.mp4"),
          "--output-size", "64", *weights])
    assert probe_video(tmp_path / "a.mp4").num_frames == 30
    err = capsys.readouterr().err
    assert f"generator: {describe_rendering(torch.device('cpu'))}" in err  # e.g. bf16 autocast
    assert "\r" not in err and "rendering" not in err  # stderr is no terminal here: no progress bar in it
    main(["compare", "--photos", *map(str, synthetic_photos), "--driver", str(driver_video), "--ks", "1", "2", "8",
          "--steps", "0", "--out", str(tmp_path / "c.mp4"), "--output-size", "64", *weights])
    info = probe_video(tmp_path / "c.mp4")
    assert (info.width, info.height) == (64 * 4, 64)  # driver | K=1 | K=2 | K=3 (8 capped at the 3 photos)
    table = (tmp_path / "c.md").read_text()
    ks = [line.split("|")[1].strip() for line in table.splitlines() if line[:3].strip("| ").isdigit()]
    assert ks == ["1", "2", "3"] and "K capped at 3" in table


def test_bad_input_exits_2_with_the_message(trained_tiny: Path, driver_video: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info:
        main(["animate", "--photos", str(empty), "--driver", str(driver_video), "--weights", str(trained_tiny),
              "--device", "cpu"])
    assert exit_info.value.code == 2
    assert "empty.jpg' is empty (0 bytes)" in capsys.readouterr().err


def test_weights_that_cannot_be_had_exit_2_naming_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:  # a typo of runs/small: not the bundled weights instead
        main(["personalize", "--photos", "a.jpg", "--save", "a.safetensors", "--weights", "runs/smal"])
    assert exit_info.value.code == 2
    assert "error: weights 'runs/smal': no such folder" in capsys.readouterr().err


def test_landmarks_of_a_photo_are_drawn_over_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo, out = tmp_path / "astronaut.png", tmp_path / "overlay.png"
    Image.fromarray(data.astronaut()).save(photo)
    main(["landmarks", str(photo), "--out", str(out), "--landmarks", "dlib"])
    assert capsys.readouterr().out.splitlines() == ["landmarks: dlib", f"{out}: 1 face found"]
    overlay, original = np.asarray(Image.open(out)), data.astronaut()
    changed = (overlay != original).any(axis=-1)
    assert 0 < changed.mean() < 0.05  # the lines only, over the photo's own pixels
    for part in LANDMARK_PARTS:  # every part, in its own colour
        assert (overlay == part.color).all(axis=-1).sum() > len(part.indices), part.name


def test_landmarks_of_a_video_are_drawn_over_every_frame(driver_video: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "overlay.mp4"
    main(["landmarks", str(driver_video), "--out", str(out), "--landmarks", "dlib"])
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["landmarks: dlib", f"{out}: 30 frames, a face in 30 of them, at most 1 in one frame"]
    assert probe_video(out).num_frames == 30 and probe_video(out).has_audio


def test_landmarks_of_a_faceless_photo_end_with_the_message_and_status_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo, out = tmp_path / "coffee.png", tmp_path / "overlay.png"
    Image.fromarray(data.coffee()).save(photo)
    with pytest.raises(SystemExit) as exit_info:
        main(["landmarks", str(photo), "--out", str(out), "--landmarks", "dlib"])
    assert exit_info.value.code == 2 and not out.exists()
    assert "error: coffee.png: no face found. Use a photo where one face is clearly visible" in capsys.readouterr().err


@pytest.mark.slow
def test_fine_tuning_without_the_generator_says_it_changes_nothing(trained_tiny: Path, synthetic_photos: list[Path],
                                                                    driver_video: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    weights = ["--weights", str(trained_tiny), "--landmarks", "dlib", "--device", "cpu", "--output-size", "64"]
    common = ["animate", "--photos", str(synthetic_photos[0]), "--driver", str(driver_video), "--steps", "1",
              "--max-seconds", "0.2", "--trim", *weights]
    main([*common, "--out", str(tmp_path / "warp.mp4")])
    assert "note: 1 fine-tuning steps train the learned generators, which are off" in capsys.readouterr().err
    main([*common, "--out", str(tmp_path / "g.mp4"), "--generator"])
    assert "fine-tuning steps train" not in capsys.readouterr().err


class Terminal(io.StringIO):
    """What a terminal's stderr says of itself."""

    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_with_the_time_left_on_a_terminal_and_silent_elsewhere() -> None:
    shown, piped = Terminal(), io.StringIO()
    for file in (shown, piped):
        progress = ConsoleProgress(file)
        for step in range(5):
            progress(step / 4, f"rendering {step}/4")
        progress(0.5, "encoding")  # a stage after the first: a new bar
        assert progress.bar is not None
        progress.bar.close()
    assert piped.getvalue() == ""
    lines = shown.getvalue().replace("\r", "\n")
    assert " 50.0% |" in lines and "100.0% |" in lines and "rendering 4/4" in lines and "encoding" in lines
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d\]", lines)  # elapsed < time left
