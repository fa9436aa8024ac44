"""``evaluate --clip`` end to end on synthetic clips (tiny random weights): the table has the warp and the model
per setting, a "model" that returns the real frames (moved: the alignment must undo it) beats the warp on
every measure, and bad clips end in a message, not a traceback."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from talking_head import evaluate_clip
from talking_head.cli import main
from talking_head.data.synthetic import render_video
from talking_head.evaluate_clip_report import cell, per_clip_table
from talking_head.media import VideoSink

SIZE = 128  # rendered and real face crops: small, so that the test is quick


def write_clip(path: Path, frames: np.ndarray, fps: float = 25.0) -> Path:
    with VideoSink(path, frames.shape[2], frames.shape[1], fps) as sink:
        for frame in frames:
            sink.write(frame)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """16 frames of a synthetic talking head (one dlib finds in every frame) at 160 px."""
    frames, _ = render_video(33, 0, 16, 160)
    return write_clip(tmp_path_factory.mktemp("clip") / "talking.mp4", frames)


def run(clip: Path, weights: Path, out: Path, size: int = SIZE, ks: str = "1 2", steps: str = "0 1") -> dict:
    main(["evaluate", "--clip", str(clip), "--weights", str(weights), "--ks", *ks.split(), "--steps", *steps.split(),
          "--output-size", str(size), "--out", str(out), "--device", "cpu", "--threads", "1"])
    return json.loads((out / "results.json").read_text())


def test_the_table_has_the_warp_and_the_model_for_every_setting(clip, tiny_weights, tmp_path, capsys):
    results = run(clip, tiny_weights, tmp_path, ks="2", steps="0 1")
    rows = {(r["k"], r["steps"]): r for r in results["rows"]}
    assert set(rows) == {(2, 0), (2, 1)}
    for row in rows.values():
        assert row["targets"] == 8  # the second half, every frame scored
        for who in ("warp", "model", "difference"):
            for name in ("mouth_ssim", "face_ssim", "mouth_lmd", "opening_r", "width_r"):
                assert row[f"{who}_{name}"] is not None and math.isfinite(row[f"{who}_{name}"])
                assert row[f"{who}_{name}_stderr"] is not None
        assert 0 < row["warp_mouth_ssim"] < 1 and 0 < row["warp_mouth_lmd"] < 1
    # The warp does not depend on fine-tuning: the same K renders the same warp.
    assert rows[2, 0]["warp_mouth_ssim"] == rows[2, 1]["warp_mouth_ssim"]
    targets = results["targets"]
    assert {t["frame"] for t in targets} == set(range(8, 16)) and len(targets) == 2 * 2 * 8
    table = (tmp_path / "results.md").read_text()
    printed = capsys.readouterr().out
    for line in ("| 2 | feed-forward | warp |", "| 2 | feed-forward | model |", "| 2 | fine-tuned 1 steps | model − warp |"):
        assert line in table and line in printed
    worst = cv2.imread(str(tmp_path / "worst.png"))
    assert worst.shape == (2 * 3 * SIZE, 3 * SIZE, 3)  # 2 settings x 3 worst targets, real | warp | model


def test_a_model_that_returns_the_real_frames_beats_the_warp(clip, tiny_weights, tmp_path, monkeypatch):
    """The metric can fail: the real frames, shrunk and moved in their crop (the alignment must undo it),
    stand in for the model's rendering, and must beat the warp's SSIM by more than its error. At 256 px,
    where dlib's detector finds the synthetic faces (from about 80 px). Not on the mouth's landmarks:
    dlib reads a synthetic mouth's small motions with errors as large as the motions themselves."""
    render, size = evaluate_clip.Renderer.__call__, 256

    def real_frames(self, batch):
        hints, warp, models = render(self, batch)
        moved = np.array([[0.95, 0.0, 12.0], [0.0, 0.95, -6.0]])
        real = np.stack([cv2.warpAffine(t.real, moved, (size, size), borderMode=cv2.BORDER_REPLICATE)
                         for t in batch])
        return hints, warp, {steps: real for steps in models}

    monkeypatch.setattr(evaluate_clip.Renderer, "__call__", real_frames)
    rows = run(clip, tiny_weights, tmp_path, size, ks="1 2", steps="0")["rows"]
    assert len(rows) == 2
    for row in rows:
        assert row["model_mouth_ssim"] > row["warp_mouth_ssim"]
        for name in ("mouth_ssim", "face_ssim"):
            assert row[f"difference_{name}"] > row[f"difference_{name}_stderr"], (name, row)
    assert "✓" in (tmp_path / "results.md").read_text()


@pytest.mark.parametrize("kind", ["one frame", "no face", "not a video"])
def test_bad_clips_end_in_a_message(kind, tiny_weights, tmp_path, capsys):
    if kind == "one frame":
        path = write_clip(tmp_path / "one.mp4", render_video(33, 0, 1, 160)[0])
    elif kind == "no face":
        grey = np.random.default_rng(0).integers(90, 110, (10, 96, 96, 3), dtype=np.uint8)
        path = write_clip(tmp_path / "empty.mp4", grey)
    else:
        path = tmp_path / "notes.mp4"
        path.write_text("not a video at all")
    with pytest.raises(SystemExit) as exit_:
        run(path, tiny_weights, tmp_path / "out", ks="1", steps="0")
    assert exit_.value.code == 2
    message = capsys.readouterr().err
    assert {"one frame": "at least 2", "no face": "no face", "not a video": "could not be read"}[kind] in message
    assert "Traceback" not in message and not (tmp_path / "out" / "results.json").exists()


def test_a_cell_marks_a_difference_only_when_it_has_an_error_to_be_judged_by():
    # The judgement is evaluate_report's, shared with the K-shot table: better by more than the error, in
    # the metric's own direction.
    row = {"difference_mouth_ssim": 0.02, "difference_mouth_ssim_stderr": 0.01, "difference_mouth_lmd": 0.02,
           "difference_mouth_lmd_stderr": 0.01, "difference_face_ssim": 0.005, "difference_face_ssim_stderr": 0.01,
           "difference_width_r": -0.1, "model_face_ssim": 0.5, "model_face_ssim_stderr": 0.01}
    assert cell(row, "difference", "mouth_ssim") == "+0.020 ± 0.010 ✓"
    assert cell(row, "difference", "mouth_lmd") == "+0.020 ± 0.010 ✗"  # a larger distance is worse
    assert cell(row, "difference", "face_ssim") == "+0.005 ± 0.010 ✗"  # within its error
    assert cell(row, "difference", "width_r") == "-0.100"  # no error: nothing to judge by
    assert cell(row, "model", "face_ssim") == "0.500 ± 0.010"
    assert cell(row, "warp", "opening_r") == "n/a"


def test_several_clips_are_also_told_apart_clip_by_clip():
    """A pooled gain may be one clip's: the summary keeps each clip's difference on the mouth's SSIM, and the
    report shows it, with how many clips the model is ahead in."""
    gains = {"a.mp4": (0.02, 0.03, 0.01), "b.mp4": (-0.01, -0.02, -0.03)}
    records = []
    for clip, differences in gains.items():
        for frame, difference in enumerate(differences):
            common = {"clip": clip, "frame": frame, "k": 8, "steps": 0, "face_ssim": 0.5, "mouth_lmd": 0.05,
                      "opening": 0.1 * frame, "width": 0.9 + 0.01 * frame, "real_opening": 0.1 * frame,
                      "real_width": 0.9 + 0.02 * frame}
            records += [{**common, "method": "warp", "mouth_ssim": 0.6},
                        {**common, "method": "model", "mouth_ssim": 0.6 + difference}]
    (row,) = evaluate_clip.summarize(records)
    assert row["clips"]["a.mp4"][0] == pytest.approx(0.02) and row["clips"]["b.mp4"][0] == pytest.approx(-0.02)
    assert row["clips"]["a.mp4"][1] == pytest.approx(0.01 / math.sqrt(3))
    table = per_clip_table([row])
    assert "| a.mp4 | +0.020 ± 0.006 ✓ |" in table and "| b.mp4 | -0.020 ± 0.006 ✗ |" in table
    assert "| clips where the model is ahead | 1 of 2 |" in table
    assert per_clip_table([{**row, "clips": {"a.mp4": row["clips"]["a.mp4"]}}]) == ""  # one clip: nothing more
