"""PNG plots of a summary (and of a comparison with a baseline).

Drawn on matplotlib `Figure`s with the Agg canvas directly, never through pyplot, so that reporting neither
needs a display nor changes the backend or global state of a process that also uses matplotlib.  This
module imports matplotlib at import time; `summary.write_summary` imports it lazily and skips the plots
when matplotlib is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tir_harness.analysis import stats
from tir_harness.analysis.compare import Comparison

ACCURACY_PNG = "accuracy.png"
TOOL_CALLS_PNG = "tool_calls.png"
COMPARISON_PNG = "comparison.png"

_DPI = 100


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    # Write next to the target and rename, so a reader never opens half a PNG.
    tmp = path.with_name(f".{path.name}.tmp")
    figure.savefig(tmp, format="png")
    tmp.replace(path)
    return path


def _errors(groups: Sequence[dict[str, Any]]) -> tuple[list[float], list[list[float]]]:
    values = [100 * g["accuracy"] for g in groups]
    below = [max(0.0, v - 100 * g["ci"][0]) for v, g in zip(values, groups, strict=True)]
    above = [max(0.0, 100 * g["ci"][1] - v) for v, g in zip(values, groups, strict=True)]
    return values, [below, above]


def _heatmap(figure: Figure, acc: dict[str, Any], levels: list[str]) -> None:
    """Subject x level, colour = accuracy (viridis, like report.html), with an "all" row and column.

    Each cell is labelled with its accuracy, its problem count and its 95% Wilson interval, so nothing is
    read off overlapping whiskers.
    """
    subjects = list(acc["by_subject_level"])
    rows = [(s, acc["by_subject_level"][s], acc["by_subject"].get(s)) for s in subjects]
    rows.append(("all subjects", acc["by_level"], acc["overall"]))
    values = np.full((len(rows), len(levels) + 1), np.nan)
    labels: dict[tuple[int, int], str] = {}
    for i, (_, cells, total) in enumerate(rows):
        for j, group in enumerate([cells.get(lv) for lv in levels] + [total]):
            if group and group["n"]:
                values[i, j] = 100 * group["accuracy"]
                lo, hi = group["ci"]
                labels[(i, j)] = f"{100 * group['accuracy']:.0f}%\nn={group['n']}\n[{100 * lo:.0f}, {100 * hi:.0f}]"
    axes = figure.add_subplot()
    image = axes.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for (i, j), text in labels.items():
        colour = "black" if values[i, j] >= 55 else "white"
        axes.text(j, i, text, ha="center", va="center", fontsize="x-small", color=colour, linespacing=1.1)
    axes.set_xticks(range(len(levels) + 1), [f"level {lv}" for lv in levels] + ["all levels"])
    axes.set_yticks(range(len(rows)), [name for name, _, _ in rows])
    axes.tick_params(length=0)
    axes.axhline(len(rows) - 1.5, color="white", linewidth=3)  # set the margins apart from the cells
    axes.axvline(len(levels) - 0.5, color="white", linewidth=3)
    axes.set_title("Accuracy by subject and level\n(per cell: accuracy, n = problems, [95% Wilson interval])")
    figure.colorbar(image, ax=axes, label="accuracy (%)", shrink=0.8)


def plot_accuracy(summary: dict[str, Any], path: str | Path) -> Path:
    """Accuracy by subject and level as a heatmap (the numbers of report.html's heatmap).

    Without levels (GSM8K and the like): one bar per subject, or per dataset, with its 95% Wilson interval.
    """
    acc = summary["accuracy"]
    levels = sorted(acc["by_level"], key=int)
    if levels and acc["by_subject_level"]:
        figure = _new_figure(max(8.0, 3.5 + 1.0 * (len(levels) + 1)), 1.6 + 0.62 * (len(acc["by_subject_level"]) + 1))
        _heatmap(figure, acc, levels)
        return _save(figure, Path(path))
    figure = _new_figure(8, 5)
    axes = figure.add_subplot()
    groups = acc["by_subject"] or acc["by_level"] or acc["by_dataset"] or {"overall": acc["overall"]}
    names = list(groups)
    values, yerr = _errors([groups[n] for n in names])
    axes.bar(range(len(names)), values, yerr=yerr, capsize=4, color="tab:blue")
    prefix = "level " if groups is acc["by_level"] else ""
    axes.set_xticks(range(len(names)), [f"{prefix}{n}\n(n={groups[n]['n']})" for n in names])
    axes.set_title("Accuracy (95% Wilson intervals)")
    axes.set_ylabel("accuracy (%)")
    axes.set_ylim(0, 100)
    axes.grid(axis="y", alpha=0.3)
    return _save(figure, Path(path))


def plot_tool_calls(summary: dict[str, Any], path: str | Path) -> Path:
    """How many trajectories made 0, 1, 2, ... tool calls, split into correct and wrong."""
    histogram = summary["tool_calls"]["histogram"]
    calls = sorted(histogram, key=int)
    right = [histogram[c]["correct"] for c in calls]
    wrong = [histogram[c]["records"] - histogram[c]["correct"] for c in calls]
    figure = _new_figure(7, 4.5)
    axes = figure.add_subplot()
    xs = [int(c) for c in calls]
    axes.bar(xs, right, color="tab:green", label="correct")
    axes.bar(xs, wrong, bottom=right, color="tab:gray", label="wrong")
    for x, r, w in zip(xs, right, wrong, strict=True):
        if r + w:
            axes.annotate(f"{100 * r / (r + w):.0f}%", (x, r + w), ha="center", va="bottom", fontsize="small")
    axes.set_xticks(xs)
    axes.set_xlabel("tool calls in the trajectory")
    axes.set_ylabel("trajectories")
    axes.set_title("Tool calls per trajectory (label: accuracy)")
    axes.legend()
    return _save(figure, Path(path))


def plot_comparison(comparison: Comparison, path: str | Path) -> Path:
    """Both runs' accuracy per group on the matched pairs, and the paired differences with intervals."""
    c = comparison
    rows: list[tuple[str, int, int, int, int]] = [("overall", c.both, c.gained, c.lost, c.neither)]
    if len(c.groups) > 1:
        rows += [(g.name, g.both, g.gained, g.lost, g.neither) for g in c.groups]
    figure = _new_figure(11, max(3.5, 0.45 * len(rows) + 2))
    left, right = figure.subplots(1, 2)
    ys = list(range(len(rows)))[::-1]
    height = 0.38
    for offset, label, color, correct_of in (
        (height / 2, f"baseline: {c.baseline_label}", "tab:gray", lambda r: r[1] + r[3]),
        (-height / 2, f"current: {c.current_label}", "tab:blue", lambda r: r[1] + r[2]),
    ):
        values, errors = [], [[], []]
        for row in rows:
            n = sum(row[1:])
            lo, hi = stats.wilson_interval(correct_of(row), n)
            value = 100 * correct_of(row) / n if n else 0.0
            values.append(value)
            errors[0].append(max(0.0, value - 100 * lo))
            errors[1].append(max(0.0, 100 * hi - value))
        left.barh([y + offset for y in ys], values, height=height, xerr=errors, capsize=3, color=color, label=label)
    left.set_yticks(ys, [f"{r[0]} (n={sum(r[1:])})" for r in rows])
    left.set_xlim(0, 100)
    left.set_xlabel("accuracy on matched pairs (%)")
    left.legend(fontsize="small", loc="lower right")
    left.set_title("Accuracy (95% Wilson)")
    for y, row in zip(ys, rows, strict=True):
        diff, lo, hi = stats.paired_difference(*row[1:])
        color = "tab:red" if hi < 0 else "tab:green" if lo > 0 else "black"
        xerr = [[100 * (diff - lo)], [100 * (hi - diff)]]
        right.errorbar([100 * diff], [y], xerr=xerr, fmt="o", capsize=3, color=color)
    right.axvline(0, color="gray", linewidth=1)
    right.set_yticks(ys, [f"{r[0]}  +{r[2]}/-{r[3]}" for r in rows])
    right.set_xlabel("current - baseline (points); +gained/-lost flips")
    right.set_title("Paired difference (95% Newcombe)")
    figure.suptitle(f"{c.n} matched pairs, exact McNemar p = {c.p_value:.3g}")
    return _save(figure, Path(path))


def write_plots(run_dir: str | Path, summary: dict[str, Any], comparison: Comparison | None = None) -> list[Path]:
    """All plots of a run into `run_dir`; returns the files written."""
    run_dir = Path(run_dir)
    written = []
    if summary["records"]:
        written.append(plot_accuracy(summary, run_dir / ACCURACY_PNG))
        written.append(plot_tool_calls(summary, run_dir / TOOL_CALLS_PNG))
    if comparison is not None and comparison.n:
        written.append(plot_comparison(comparison, run_dir / COMPARISON_PNG))
    return written
