"""Limits come from the environment when a pipeline is made, never frozen when a module is imported."""

from __future__ import annotations

from pathlib import Path

import pytest

from talking_head.errors import InputError
from talking_head.models.talking_head_model import TalkingHeadModel
from talking_head.limits import Limits
from talking_head.media import probe_driver
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import RenderConfig, check_driver

#: Every limit's variable, each set away from its default (the driver fixture: 1.2 s at 25 fps, 160 px).
SERVER = {"TALKING_HEAD_MAX_SHOTS": "2", "TALKING_HEAD_MAX_VIDEO_SECONDS": "1", "TALKING_HEAD_MAX_OUTPUT_SIZE": "200",
          "TALKING_HEAD_MAX_FPS": "12", "TALKING_HEAD_MAX_DRIVER_SIDE": "100",
          "TALKING_HEAD_FACE_WITHIN_SECONDS": "0.5"}


def test_every_limit_is_read_from_its_variable() -> None:
    assert Limits.from_env(SERVER) == Limits(max_shots=2, max_video_seconds=1.0, max_output_size=200,
                                             max_driver_fps=12.0, max_driver_side=100, face_within_seconds=0.5)
    assert Limits.from_env({}) == Limits()


def test_variables_set_after_import_take_effect_on_the_next_pipeline(
        monkeypatch: pytest.MonkeyPatch, tiny_model: TalkingHeadModel, driver_video: Path) -> None:
    before = TalkingHeadPipeline(tiny_model, device="cpu")
    for name, value in SERVER.items():
        monkeypatch.setenv(name, value)
    pipe = TalkingHeadPipeline(tiny_model, device="cpu")
    assert pipe.limits == Limits.from_env(SERVER) and before.limits == Limits()
    with pytest.raises(InputError, match="3 photos given; at most 2 can be used"):
        pipe.prepare_shots(["a.jpg"] * 3)
    with pytest.raises(InputError, match="the output height is 256 px; at most 200 px"):
        check_driver(driver_video, RenderConfig(output_size=256), pipe.limits)  # unset, it is at most the limit
    with pytest.raises(InputError, match=r"1\.2 s long; the limit is 1 s"):
        check_driver(driver_video, RenderConfig(output_size=128), pipe.limits)
    trimmed = check_driver(driver_video, RenderConfig(output_size=128, trim=True), pipe.limits)
    assert (trimmed.info.fps, trimmed.info.width, trimmed.frames) == (12, 100, 12)
    assert probe_driver(driver_video).fps == 12  # the functions' default: the environment as it is now
