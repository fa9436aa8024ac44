"""``evaluate``'s report: ``results.md`` (the paper's table, and each model row against the warp baseline
target by target), ``results.json`` (the rows with their standard errors, dlib's floor on the real frames, the
options and the model's provenance), ``metrics_vs_k.png`` / ``metrics_vs_steps.png`` and ``samples.png``.

The measuring and summarising is ``evaluate``'s; nothing here changes a number. The judgement "better than
the baseline by more than the paired standard error" and its ``± ✓`` cell are written once here, for
``evaluate_clip_report`` too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from talking_head.evaluate import (
    BASELINE,
    FEED_FORWARD,
    FINE_TUNED,
    METRICS,
    PAIRED,
    Evaluation,
    Method,
    table_order,
)
from talking_head.render import caption


# ------------------------------------------------------------------------------------- judgements
def clearly_better(difference: float | None, stderr: float | None, higher: bool) -> bool | None:
    """Whether a paired difference (model minus baseline, target by target) favours the model by more than
    its standard error, for a metric where ``higher`` is better or not (None when there is nothing to judge)."""
    if difference is None or stderr is None:
        return None
    return (difference if higher else -difference) > stderr


def beats_baseline(row: dict, name: str) -> bool | None:
    """Whether a model row is better than the warp baseline on ``name`` by more than the paired standard
    error (None when there is no paired difference to judge)."""
    return clearly_better(row.get(f"{name}_vs_baseline"), row.get(f"{name}_vs_baseline_stderr"), METRICS[name][1])


# ----------------------------------------------------------------------------------------- tables
def column_header(title: str, higher: bool) -> str:
    """A metric's column title with the way that is better: ``SSIM ↑``, ``LMD ↓``."""
    return f"{title} {'↑' if higher else '↓'}"


def difference_cell(difference: float, stderr: float, better: bool | None) -> str:
    """``+0.014 ± 0.001 ✓``: a paired difference, its standard error and whether it is clearly better (✓) or not."""
    return f"{difference:+.3f} ± {stderr:.3f} {'✓' if better else '✗'}"


def _cell(value: float | None, name: str) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.0f} %" if name == "detected" else f"{value:.2f}" if name == "psnr" else f"{value:.3f}"


def results_table(rows: list[dict]) -> str:
    """The paper's layout: a row per method and K (in brackets), a column per metric."""
    headers = [column_header(title, higher) for title, higher in METRICS.values()]
    lines = ["| Method (K) | " + " | ".join(headers) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for row in rows:
        lines.append(f"| {row['label']} | " + " | ".join(_cell(row[name], name) for name in METRICS) + " |")
    return "\n".join(lines)


def comparison_table(rows: list[dict]) -> str:
    """Each model row minus the warp baseline at its K, target by target: mean ± standard error, and
    whether the model is better by more than that error (✓) or not (✗)."""
    compared = [row for row in rows if any(f"{name}_vs_baseline" in row for name in PAIRED)]
    headers = [column_header(*METRICS[name]) for name in PAIRED]
    lines = ["| Method (K) minus the warp baseline | " + " | ".join(headers) + " |", "|---" * (len(PAIRED) + 1) + "|"]
    for row in compared:
        cells = []
        for name in PAIRED:
            difference, stderr = row[f"{name}_vs_baseline"], row[f"{name}_vs_baseline_stderr"]
            cells.append("n/a" if difference is None or stderr is None
                         else difference_cell(difference, stderr, beats_baseline(row, name)))
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_markdown(path: Path, rows: list[dict], floor: dict[str, float | None], source: str, model: str,
                   seconds: float) -> None:
    identities, targets = rows[0]["identities"], rows[0]["frames"] // rows[0]["identities"]
    found, distance = _cell(floor["detected"], "detected"), _cell(floor["landmark_distance"], "landmark_distance")
    notes = f"""
{identities} identities x {targets} target frames each ({source}); model: {model}.
Evaluated in {seconds / 60:.1f} min. The real target frames themselves: face found {found}, LMD {distance}
(dlib's own error: the best those two columns can be).

- SSIM and PSNR (scikit-image) compare each rendering with the real target frame at the model's resolution.
- CSIM: cosine similarity of dlib's 128-d face-recognition descriptors of rendering and real frame, both taken
  at the target's landmarks. dlib's descriptors lie in a narrow cone: a photo and its mirror image score 0.99;
  on synthetic faces, one face in two poses 0.97 and two different faces 0.94 on average (0.88-0.97). Small
  differences matter, and the values are not comparable with the paper's ArcFace-based CSIM.
- LMD: dlib's 68 points detected on the rendering vs the landmarks that drove it, mean distance over the
  inter-ocular distance, over the renderings where dlib found a face ("face found").
- No LPIPS-style perceptual distance: its network weights cannot be obtained offline.
"""
    paired = f"""
## Against the warp baseline, target by target

{comparison_table(rows)}

✓: better than the baseline by more than the standard error of the paired difference (both render the
same targets from the same shots, so the per-method errors above mostly measure how hard the targets are).
"""
    path.write_text(f"# Few-shot self-reenactment\n\n{results_table(rows)}\n{notes}{paired}")


# ------------------------------------------------------------------------------ plots and samples
def _series(rows: list[dict], method: str, steps: int | None, name: str) -> tuple[list[int], list[float]]:
    chosen = [r for r in rows if r["method"] == method and r["steps"] == steps and r[name] is not None]
    return [r["k"] for r in chosen], [r[name] for r in chosen]


def _panels(figure, floor: dict[str, float | None] | None):
    """One panel per metric, titled with its direction; the share of found faces on a 0-1 axis."""
    for axes, (name, (title, higher)) in zip(figure.subplots(1, len(METRICS)), METRICS.items()):
        axes.set_title(f"{title} ({'higher' if higher else 'lower'} is better)", fontsize="medium")
        if name == "detected":
            axes.set_ylim(-0.05, 1.05)
        if floor and floor.get(name) is not None:
            axes.axhline(floor[name], color="grey", linestyle=":", linewidth=1.5, label="real frames")
        yield axes, name


def plot_results(rows: list[dict], out: Path, floor: dict[str, float | None] | None = None) -> list[Path]:
    """``metrics_vs_k.png`` (baseline, feed-forward, most fine-tuned), and ``metrics_vs_steps.png`` when
    several step counts were evaluated (a line per K, the baseline dashed in the same colour). ``floor``
    (``real_frame_floor``) is drawn as a dotted grey line in the panels it applies to."""
    from matplotlib.figure import Figure  # only the evaluation needs matplotlib: imported here

    steps = sorted({r["steps"] for r in rows if r["steps"] is not None})
    ks = sorted({r["k"] for r in rows})
    lines = [(BASELINE, None, "warp baseline")]
    lines += [(FEED_FORWARD, 0, "feed-forward")] if 0 in steps else []
    lines += [(FINE_TUNED, steps[-1], f"fine-tuned ({steps[-1]} steps)")] if steps[-1] > 0 else []
    size = (3.6 * len(METRICS), 3.2)
    figure = Figure(figsize=size, layout="constrained")
    for axes, name in _panels(figure, floor):
        for method, n, label in lines:
            axes.plot(*_series(rows, method, n, name), marker="o", label=label)
        axes.set(xlabel="K (shots)", xscale="log")
        axes.set_xticks(ks, [str(k) for k in ks])
        axes.minorticks_off()
    for axes in figure.axes[0], figure.axes[-1]:
        axes.legend(fontsize="small")
    paths = [out / "metrics_vs_k.png"]
    figure.savefig(paths[0], dpi=100)
    if len(steps) > 1:
        figure = Figure(figsize=size, layout="constrained")
        for axes, name in _panels(figure, floor):
            for k in ks:
                chosen = [r for r in rows if r["k"] == k and r["steps"] is not None and r[name] is not None]
                line, = axes.plot([r["steps"] for r in chosen], [r[name] for r in chosen], marker="o", label=f"K={k}")
                baseline = [r[name] for r in rows if r["k"] == k and r["steps"] is None and r[name] is not None]
                if baseline:
                    axes.axhline(baseline[0], color=line.get_color(), linestyle="--", linewidth=1)
            axes.set(xlabel="fine-tuning steps")
            axes.set_xticks(steps)
        figure.axes[0].legend(title="dashed: warp baseline", fontsize="small", title_fontsize="small")
        paths.append(out / "metrics_vs_steps.png")
        figure.savefig(paths[1], dpi=100)
    return paths


def samples_grid(real: np.ndarray, renderings: dict[tuple[Method, int], np.ndarray], columns: int = 4) -> np.ndarray:
    """One identity's targets: the real frames on top, then a row per (K, method) in the table's order,
    each row labelled on its first image. (T, H, W, 3) uint8 + {(method, K): (T, H, W, 3)} -> one image."""
    chosen = np.linspace(0, len(real) - 1, min(columns, len(real))).round().astype(int)
    order = sorted(renderings, key=table_order)
    names = {BASELINE: "warp", FEED_FORWARD: "feed-fwd"}
    rows = [("real", real)] + [(f"K={k} {names.get(method.name, f'{method.steps} steps')}", renderings[method, k])
                               for method, k in order]
    return np.concatenate([np.concatenate([caption(images[chosen[0]], text), *images[chosen[1:]]], axis=1)
                           for text, images in rows], axis=0)


# ------------------------------------------------------------------------------------------ files
def write_report(out: Path, evaluation: Evaluation) -> list[Path]:
    """``results.md``, ``results.json``, the plots and ``samples.png`` in ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.md", out / "results.json"]
    write_markdown(paths[0], evaluation.rows, evaluation.floor, evaluation.source, evaluation.model,
                   evaluation.seconds)
    paths[1].write_text(json.dumps({"rows": evaluation.rows, "real_frames": evaluation.floor, **evaluation.record},
                                   indent=1))
    paths += plot_results(evaluation.rows, out, evaluation.floor)
    paths.append(out / "samples.png")
    Image.fromarray(samples_grid(evaluation.real, evaluation.renderings)).save(paths[-1])
    return paths
