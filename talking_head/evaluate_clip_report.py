"""``evaluate --clip``'s report: the table (markdown, printed and in ``results.md``), ``results.json`` (the rows,
every target's scores and the options) and ``worst.png`` (each setting's worst targets: real | warp | model).

The measuring is ``evaluate_clip``'s; nothing here changes a number.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from talking_head.evaluate_clip import METHODS, ClipResult
from talking_head.evaluate_report import clearly_better, column_header, difference_cell
from talking_head.render import caption

#: Column -> (header, higher is better); a series' column is its Pearson r against the real frames.
COLUMNS = {"mouth_ssim": ("mouth SSIM", True), "face_ssim": ("face SSIM", True), "mouth_lmd": ("mouth LMD", False),
           "opening_r": ("opening r", True), "width_r": ("width r", True)}


def cell(row: dict, who: str, name: str) -> str:
    """``mean ± standard error`` of ``who`` (a method or ``difference``) on column ``name``; a difference
    is marked ✓ when the model is better than the warp by more than its standard error, else ✗."""
    value, stderr = row.get(f"{who}_{name}"), row.get(f"{who}_{name}_stderr")
    if value is None:
        return "n/a"
    if who == "difference" and stderr is not None:
        return difference_cell(value, stderr, clearly_better(value, stderr, COLUMNS[name][1]))
    text = f"{value:+.3f}" if who == "difference" else f"{value:.3f}"
    return text + (f" ± {stderr:.3f}" if stderr is not None else "")


def results_table(rows: list[dict]) -> str:
    """Per setting: the warp, the model and the model minus the warp (target by target), a column per metric."""
    headers = [column_header(title, higher) for title, higher in COLUMNS.values()]
    lines = ["| K | setting | | " + " | ".join(headers) + " |", "|---" * (len(COLUMNS) + 3) + "|"]
    for row in rows:
        setting = row["label"].split(", ", 1)[1]
        for who, title in ((METHODS[0], "warp"), (METHODS[1], "model"), ("difference", "model − warp")):
            lines.append(f"| {row['k']} | {setting} | {title} | "
                         + " | ".join(cell(row, who, name) for name in COLUMNS) + " |")
    return "\n".join(lines)


def per_clip_table(rows: list[dict]) -> str:
    """The model minus the warp on the mouth's SSIM, a row per clip and a column per setting, and in how many
    clips the model is ahead; empty for one clip (the main table says it all)."""
    clips = sorted({clip for row in rows for clip in row["clips"]})
    if len(clips) < 2:
        return ""
    lines = ["| clip | " + " | ".join(f"K = {row['k']}, {row['label'].split(', ', 1)[1]}" for row in rows) + " |",
             "|---" * (len(rows) + 1) + "|"]
    for clip in clips:
        lines.append(f"| {clip} | " + " | ".join(_mouth_difference(row["clips"].get(clip)) for row in rows) + " |")
    ahead = [f"{sum(mean is not None and mean > 0 for mean, _ in row['clips'].values())} of {len(row['clips'])}"
             for row in rows]
    lines.append("| clips where the model is ahead | " + " | ".join(ahead) + " |")
    return "\n## Model − warp on the mouth's SSIM, clip by clip\n\n" + "\n".join(lines) + "\n"


def _mouth_difference(scores: tuple[float, float | None] | None) -> str:
    mean, stderr = scores if scores is not None else (None, None)
    if mean is None:
        return "n/a"
    if stderr is None:
        return f"{mean:+.3f}"
    return difference_cell(mean, stderr, clearly_better(mean, stderr, COLUMNS["mouth_ssim"][1]))


NOTES = """
Mean ± standard error over the targets (the clips' second halves; shots from their first halves). Opening r
and width r: Pearson r of the output's inner-lip opening and corner-to-corner width against the real
frames' over the targets (± a bootstrap's standard error). "model − warp": the difference target by target
(for r, of the two correlations), ✓ where the model is better by more than its standard error.
Each output is aligned onto its real frame by a similarity on dlib's eye and nose points; SSIM on grey
levels; LMD and widths in inter-ocular distances.
"""


def markdown(result: ClipResult, header: str) -> str:
    notes = "".join(f"- {note}\n" for note in result.notes)
    return (f"# Self-reenactment on a clip\n\n{header}\n\n{results_table(result.rows)}\n{NOTES}\n{notes}"
            f"{per_clip_table(result.rows)}")


def worst_picture(result: ClipResult) -> np.ndarray | None:
    """Each setting's worst targets, a row each: real | warp | model, labelled; None when none were kept."""
    rows = []
    for setting in sorted(result.worst):
        for worst in result.worst[setting]:
            where = f"{setting.label}\n{Path(worst.clip).stem}, frame {worst.frame}"
            rows.append(np.concatenate([caption(worst.real, where), caption(worst.warp, "warp"),
                                        caption(worst.model, f"model (mouth SSIM {worst.score:.2f})")], axis=1))
    return np.concatenate(rows, axis=0) if rows else None


def write_report(out: Path, result: ClipResult, header: str, meta: dict) -> list[Path]:
    """``results.md``, ``results.json`` and ``worst.png`` in ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.md", out / "results.json"]
    paths[0].write_text(markdown(result, header))
    paths[1].write_text(json.dumps({"rows": result.rows, "notes": result.notes, **meta, "targets": result.records},
                                   indent=1))
    picture = worst_picture(result)
    if picture is not None:
        paths.append(out / "worst.png")
        Image.fromarray(picture).save(paths[-1])
    return paths

