"""The K-shot self-reenactment protocol end to end on a tiny random model: frame plan, table, JSON, plots,
reproducibility, and a dataset folder of another resolution."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from talking_head.cli import main
from talking_head.data.format import read_frames, read_index
from talking_head.evaluate import (
    BASELINE,
    FEED_FORWARD,
    EvaluateOptions,
    Method,
    evaluate,
    frame_plan,
    load_video_frames,
    summarize,
)
from talking_head.evaluate_report import beats_baseline, comparison_table, write_report

METRIC_KEYS = ("ssim", "psnr", "csim", "landmark_distance", "detected")


def test_shots_come_from_the_first_part_and_targets_from_the_rest():
    shots, targets = frame_plan(64, (1, 8, 32), 16)
    assert shots[1] == [0] and len(shots[8]) == 8 and shots[32] == list(range(32))
    assert len(targets) == 16 and min(targets) == 32 and max(targets) == 63
    shots, targets = frame_plan(200, (1, 8), 4)  # a long clip: shots over the first half, targets over the second
    assert max(shots[8]) == 99 and targets == [100, 133, 166, 199]
    with pytest.raises(ValueError, match="too short"):
        frame_plan(40, (32,), 16)


def rows_by_key(out) -> dict[tuple, dict]:
    return {(r["method"], r["k"], r["steps"]): r for r in json.loads((out / "results.json").read_text())["rows"]}


@pytest.mark.slow
def test_the_protocol_writes_the_papers_table_reproducibly_with_plots(tiny_weights, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    main(["evaluate", "--weights", str(tiny_weights), "--out", str(first), "--identities", "2", "--ks", "1", "2",
          "--steps", "0", "2", "--targets", "2", "--device", "cpu", "--threads", "1"])
    rows = rows_by_key(first)
    # One baseline row per K (it does not depend on steps), one model row per (K, steps).
    assert set(rows) == {(method, k, steps) for k in (1, 2) for method, steps in
                         (("warp baseline", None), ("feed-forward", 0), ("fine-tuned", 2))}
    for row in rows.values():
        assert row["identities"] == 2 and row["frames"] == 4
        assert all(math.isfinite(row[key]) for key in ("ssim", "psnr", "csim", "detected"))
        assert (row["landmark_distance"] is None) == (row["detected"] == 0)
    # Two steps of fine-tuning change the renderings; an untrained texture-path model is its warp, as good
    # as the warp baseline (a random pure-synthesis generator would be far worse).
    assert rows["fine-tuned", 1, 2]["psnr"] != rows["feed-forward", 1, 0]["psnr"]
    assert abs(rows["warp baseline", 1, None]["ssim"] - rows["feed-forward", 1, 0]["ssim"]) < 0.1

    table = (first / "results.md").read_text()
    assert "| Method (K) | SSIM ↑ | PSNR (dB) ↑ | CSIM ↑ | LMD ↓ | face found ↑ | mouth SSIM, newly open ↑ |" in table
    for label in ("Warp baseline (1)", "Feed-forward (2)", "Fine-tuned, 2 steps (2)"):
        assert f"| {label} |" in table
    assert "| Method (K) minus the warp baseline |" in table and "| Fine-tuned, 2 steps (2) | " in table
    model_row = rows["feed-forward", 1, 0]
    assert model_row["ssim_vs_baseline"] == pytest.approx(model_row["ssim"] - rows["warp baseline", 1, None]["ssim"])
    for plot in ("metrics_vs_k.png", "metrics_vs_steps.png"):
        assert (first / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The first identity's renderings: real targets on top, then (baseline, feed-forward, fine-tuned) per K.
    samples = np.asarray(Image.open(first / "samples.png"))
    assert samples.shape == ((1 + 2 * 3) * 32, 2 * 32, 3)
    size = slice(32, 64)  # the second column: no caption drawn on it
    real, baseline, feed_forward = (samples[row * 32:(row + 1) * 32, size] for row in (0, 1, 2))
    # (Two fine-tuning steps of an untrained model move its mouth's paint by a grey level at most: that
    # the fine-tuned row is its own model shows in its PSNR above, not reliably in 32 px of uint8.)
    assert not np.array_equal(baseline, feed_forward) and not np.array_equal(real, feed_forward)

    # Again with only the feed-forward model: the same baseline and feed-forward numbers, no steps plot.
    written = write_report(second, evaluate(EvaluateOptions(out=str(second), weights=str(tiny_weights), identities=2,
                                                            ks=(1,), steps=(0,), targets=2, device="cpu")))
    assert sorted(written) == sorted(second.iterdir())  # the report names every file it writes
    again = rows_by_key(second)
    assert set(again) == {key for key in rows if key[0] != "fine-tuned" and key[1] == 1}
    for key, row in again.items():
        assert [row[m] for m in METRIC_KEYS] == [rows[key][m] for m in METRIC_KEYS]
    assert not (second / "metrics_vs_steps.png").exists()


@pytest.mark.slow
def test_a_dataset_folder_is_evaluated_at_the_models_resolution(tiny_weights, tiny_dataset, tmp_path):
    _, records = read_index(tiny_dataset)  # 48-px frames; the tiny model works at 32 px
    frames, landmarks = load_video_frames(tiny_dataset, records[0], [0, 5], 32)
    original_frames, original = read_frames(tiny_dataset, records[0], [0, 5])
    assert frames.shape == (2, 32, 32, 3) and frames.dtype == np.uint8
    resized = cv2.resize(original_frames[1], (32, 32), interpolation=cv2.INTER_AREA)
    assert np.abs(frames[1].astype(int) - resized).max() <= 1
    np.testing.assert_allclose(landmarks, original * 32 / 48, rtol=1e-6)

    options = EvaluateOptions(out=str(tmp_path), weights=str(tiny_weights), data=str(tiny_dataset), identities=5,
                              ks=(2,), steps=(0,), targets=3, device="cpu")
    write_report(tmp_path, evaluate(options))
    result = json.loads((tmp_path / "results.json").read_text())
    heldout_people = {r.person for r in records if r.split == "heldout"}
    assert result["rows"][0]["identities"] == len(heldout_people) < 5  # only held-out people, one video each
    assert "'heldout' split of" in result["data"]
    assert 0 <= result["real_frames"]["detected"] <= 1  # dlib on the real targets: the floor of two columns
    with pytest.raises(ValueError, match="no 'heldout' video has the 24 frames"):
        evaluate(EvaluateOptions(out=str(tmp_path), weights=str(tiny_weights), data=str(tiny_dataset),
                                 ks=(12,), steps=(0,), targets=3))


@pytest.mark.parametrize(("option", "message"), [({"batch_size": 0}, "batch_size >= 1"),
                                                 ({"lr_generator": 0.0}, "learning rates must be > 0")])
def test_bad_fine_tuning_options_are_refused_before_the_model_loads(option, message, tmp_path):
    # The weights folder does not exist: reaching the loader would raise a different error.
    with pytest.raises(ValueError, match=message):
        evaluate(EvaluateOptions(out=str(tmp_path), weights=str(tmp_path / "no-weights"), **option))


def test_the_model_is_compared_with_the_baseline_target_by_target():
    # Hard and easy targets (SSIM 0.5 and 0.9): the per-method errors are large, yet the model is better
    # on every target by 0.01, which only a paired difference can see.
    baseline = [{"ssim": v, "psnr": 20.0, "csim": 0.9, "landmark_distance": 0.1, "detected": 1.0,
                 "mouth_ssim": math.nan} for v in (0.5, 0.9) * 4]
    model = [{**b, "ssim": b["ssim"] + 0.01 + 0.001 * i, "landmark_distance": 0.1 + 0.01 * (i % 2)}
             for i, b in enumerate(baseline)]
    scores = {(Method(BASELINE, None), 1): baseline, (Method.model(0), 1): model}
    rows = {row["method"]: row for row in summarize(scores, identities=2)}
    row = rows[FEED_FORWARD]
    assert row["ssim_stderr"] > 0.05  # the targets' spread
    assert row["ssim_vs_baseline"] == pytest.approx(0.0135) and row["ssim_vs_baseline_stderr"] < 0.001
    assert beats_baseline(row, "ssim") is True
    assert beats_baseline(row, "psnr") is False  # equal is not better
    assert beats_baseline(row, "landmark_distance") is False  # higher distances are worse
    assert beats_baseline(row, "mouth_ssim") is None  # no target scored
    assert "ssim_vs_baseline" not in rows[BASELINE]
    table = comparison_table(list(rows.values()))
    assert "| Feed-forward (1) | +0.014 ± 0.001 ✓ | +0.000 ± 0.000 ✗ | +0.005 ± 0.002 ✗ | n/a |" in table


def test_fine_tuned_avatars_are_evaluated_without_an_onnx_export_each(tiny_weights, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from collections import OrderedDict

    from talking_head import onnx_backend

    monkeypatch.setattr(onnx_backend, "_SESSIONS", OrderedDict())  # no session kept from another test's export
    monkeypatch.setenv("TALKING_HEAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TALKING_HEAD_BACKEND", "onnx")
    main(["evaluate", "--weights", str(tiny_weights), "--out", str(tmp_path / "out"), "--identities", "1", "--ks",
          "1", "--steps", "0", "2", "--targets", "2", "--device", "cpu", "--threads", "1"])
    assert {("feed-forward", 1, 0), ("fine-tuned", 1, 2)} <= set(rows_by_key(tmp_path / "out"))
    # One graph: the checkpoint's, which every feed-forward avatar shares; the fine-tuned one rendered in torch.
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 1
