"""Every generated video says it is synthetic: a visible mark in every frame, in whichever corner was
chosen, and a notice in the container's metadata; the app has no way to turn either off."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import cv2
import gradio as gr
import numpy as np
import pytest
from app_support import RecordingProgress, load_app_module, tiny_weights
from moviepy.video.io.ffmpeg_reader import ffmpeg_parse_infos

from talking_head.avatar import Avatar
from talking_head.media import GENERATED_NOTICE, iter_video_frames
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import RenderConfig
from talking_head.watermark import POSITIONS, stamp_synthetic
from talking_head_app.handlers import AppSettings, TalkingHeadApp

SIZE = 256
#: Every input of the app's handlers and every field of RenderConfig, none of which turns the mark off.
HANDLER_INPUTS = {
    "generate": ["photos", "driver", "steps", "retarget", "paste_back", "side_by_side", "output_size",
                 "mark_position", "seed", "generator", "clip", "shots", "face", "progress"],
    "animate_avatar": ["avatar_file", "driver", "retarget", "paste_back", "side_by_side", "output_size",
                       "mark_position", "generator", "progress"],
    "compare": ["photos", "driver", "ks", "steps", "generator", "clip", "face", "progress"],
}
RENDER_FIELDS = ["retarget", "paste_back", "side_by_side", "output_size", "generator", "mouth", "batch_size",
                 "max_seconds", "trim", "mark_position", "smooth", "track"]
#: The corner whose mark never overlaps ``position``'s (the box is most of a 256-px frame wide).
ACROSS = {"bottom-right": "top-right", "top-right": "bottom-right", "bottom-left": "top-left",
          "top-left": "bottom-left"}


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> TalkingHeadPipeline:
    return TalkingHeadPipeline.from_pretrained(tiny_weights(tmp_path_factory.mktemp("weights")), device="cpu",
                                               landmark_backend="dlib")


@pytest.fixture(scope="module")
def renders(pipe: TalkingHeadPipeline, synthetic_photos: list[Path], driver_video: Path,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One video per mark position, otherwise identical (same avatar, driver and layout)."""
    folder = tmp_path_factory.mktemp("marked")
    avatar: Avatar = pipe.personalize(synthetic_photos[:1], steps=0)
    return {position: pipe.animate(avatar, driver_video, folder / f"{position}.mp4",
                                   RenderConfig(output_size=SIZE, mark_position=position)).path
            for position in POSITIONS}


def region(position: str) -> np.ndarray:
    """The mark's box as a boolean (H, W) mask: the bounding box of what the stamp darkens on a white frame."""
    ys, xs = np.nonzero(stamp_synthetic(np.full((SIZE, SIZE, 3), 255, np.uint8), position)[..., 0] < 255)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
    return mask


def letters(position: str, margin: int = 0) -> np.ndarray:
    """The mark's letters as a boolean mask: their solid core (anti-aliased edges left out, which the
    video codec blurs most), or with ``margin`` everything within that many pixels of them."""
    drawn = stamp_synthetic(np.zeros((SIZE, SIZE, 3), np.uint8), position)[..., 0]
    if not margin:
        return drawn > 200
    return cv2.dilate((drawn > 0).astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8)).astype(bool)


@pytest.mark.slow
@pytest.mark.parametrize("position", POSITIONS)
def test_every_frame_carries_the_mark_where_it_was_asked_for(position: str, renders: dict[str, Path]) -> None:
    """Compared with the same render marked in another corner (unmarked here): the box is darkened to
    about a third, the letters are white, and nothing else in the frame differs."""
    text, box = letters(position), region(position) & ~letters(position, margin=3)
    elsewhere = ~(region(position) | region(ACROSS[position]))
    marked = list(iter_video_frames(renders[position]))
    plain = list(iter_video_frames(renders[ACROSS[position]]))
    assert len(marked) == len(plain) == 30
    for with_mark, without in zip(marked, plain):
        with_mark, without = with_mark.astype(float), without.astype(float)
        assert with_mark[text].mean() > 200 and with_mark[text].mean() > without[text].mean() + 60
        ratio = with_mark[box].mean() / without[box].mean()
        assert 0.25 < ratio < 0.5  # darkened to 0.35, give or take the codec
        assert np.abs(with_mark[elsewhere] - without[elsewhere]).mean() < 4  # the codec's noise (H.264 at CRF 23)


@pytest.mark.slow
def test_the_container_says_the_video_is_generated(renders: dict[str, Path]) -> None:
    for video in renders.values():
        metadata = ffmpeg_parse_infos(str(video), decode_file=False)["metadata"]
        assert metadata["comment"] == GENERATED_NOTICE and metadata["description"] == "AI-generated"


def test_the_app_offers_no_way_to_turn_the_mark_off(pipe: TalkingHeadPipeline, driver_video: Path,
                                                    tmp_path: Path) -> None:
    app = TalkingHeadApp(pipe, AppSettings(), work_root=tmp_path)
    # No input of a handler or field of the render switches it off: each new one fails here until it is
    # looked at (a search by name would miss a ``stamp=False`` or an ``overlay=False``) ...
    for handler, inputs in HANDLER_INPUTS.items():
        assert list(inspect.signature(getattr(app, handler)).parameters) == inputs, handler
    assert [f.name for f in dataclasses.fields(RenderConfig)] == RENDER_FIELDS
    # ... which accepts corners only (what an API caller might try instead is refused) ...
    for off in ("none", "off", "", None):
        with pytest.raises(gr.Error, match="mark_position must be one of"):
            app.generate(["photo.jpg"], str(driver_video), 0, mark_position=off, progress=RecordingProgress())
    # ... and the UI's only control of it lists the corners.
    demo = load_app_module().build_demo(app)
    controls = [block for block in demo.blocks.values()
                if re.search(r"\b(mark|watermark|synthetic)\b", str(getattr(block, "label", "")), re.IGNORECASE)]
    assert len(controls) == 1 and isinstance(controls[0], gr.Dropdown)
    assert [choice for choice, _ in controls[0].choices] == list(POSITIONS)
    assert not list(tmp_path.iterdir())  # refused before any work
