"""Rendering a summary and a comparison for people: the terminal table, summary.md, the live line.

Pure functions of the numbers computed in `summary` and `compare`; nothing here computes a statistic or
writes a file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tir_harness.analysis import stats
from tir_harness.analysis.compare import Comparison, PairKey
from tir_harness.analysis.formats import interval, p_value, percent
from tir_harness.analysis.summary import sort_key
from tir_harness.util.text import displayable


def format_pair(key: PairKey, with_sample: bool) -> str:
    return f"{key[0]}#{key[1]}" if with_sample else key[0]


def _id_list(keys: Sequence[PairKey], with_sample: bool, show: int) -> str:
    shown = [format_pair(k, with_sample) for k in keys[:show]]
    more = len(keys) - len(shown)
    return ", ".join(shown) + (f", ... and {more} more" if more > 0 else "")


def format_comparison(comparison: Comparison, show: int = 20) -> list[str]:
    """The comparison as terminal lines; at most `show` ids per list."""
    c = comparison
    with_sample = any(s > 0 for _, s in (*c.gained_ids, *c.lost_ids, *c.only_current, *c.only_baseline))
    width = max(len(c.baseline_label), len(c.current_label))
    lines = [
        f"baseline {c.baseline_label:<{width}}  {percent(c.baseline_accuracy):>6} {interval(c.baseline_ci)}"
        f"  ({c.baseline_correct}/{c.n})",
        f"current  {c.current_label:<{width}}  {percent(c.current_accuracy):>6} {interval(c.current_ci)}"
        f"  ({c.current_correct}/{c.n})",
        f"difference {100 * c.difference:+.1f} points, 95% CI [{100 * c.difference_ci[0]:+.1f}, "
        f"{100 * c.difference_ci[1]:+.1f}] (paired, Newcombe)",
        f"flips: {c.gained} gained (wrong -> right), {c.lost} lost (right -> wrong); "
        f"exact McNemar p = {p_value(c.p_value)}",
    ]
    if c.lost_ids:
        lines.append(f"  lost: {_id_list(c.lost_ids, with_sample, show)}")
    if c.gained_ids:
        lines.append(f"  gained: {_id_list(c.gained_ids, with_sample, show)}")
    if c.only_current or c.only_baseline:
        lines.append(
            f"unmatched (excluded): {len(c.only_current)} only in current, {len(c.only_baseline)} only in baseline"
        )
        if c.only_current:
            lines.append(f"  only in current: {_id_list(c.only_current, with_sample, show)}")
        if c.only_baseline:
            lines.append(f"  only in baseline: {_id_list(c.only_baseline, with_sample, show)}")
    lines += [f"warning: {w}" for w in c.warnings]
    return [displayable(line) for line in lines]  # ids and labels come from data files and the model's server


def _short_pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _ci(group: dict[str, Any]) -> str:
    return interval(group["ci"])


def _count(group: dict[str, Any]) -> str:
    if group["records"] == group["n"]:
        return f"{group['correct']}/{group['n']}"
    return f"{group['correct']}/{group['records']} samples"


def _headline(summary: dict[str, Any]) -> str:
    run = summary["run"]
    models = ", ".join(str(m) for m in run["models"]) or "unknown model"
    samples = summary["samples"]
    per = f"{samples['max']} samples each" if samples["max"] > 1 else "1 sample each"
    if samples["min"] != samples["max"]:
        per = f"{samples['min']}-{samples['max']} samples each"
    run_id = f" run {run['run_ids'][0]}" if len(run["run_ids"]) == 1 else ""
    return f"{models}{run_id}: {summary['problems']} problems, {per}"


def _levels(summary: dict[str, Any]) -> list[str]:
    levels: set[str] = set(summary["accuracy"]["by_level"])
    return sorted(levels, key=sort_key)


def _k_line(name: str, table: dict[str, Any]) -> str:
    return f"{name:<9}" + "  ".join(f"{k}: {percent(v['value'])}" for k, v in table.items())


def _tool_line(summary: dict[str, Any]) -> str:
    tools, turns = summary["tool_calls"], summary["turns"]
    share = tools["used"] / summary["records"] if summary["records"] else 0.0
    limits = summary["run"]["max_tool_calls"]
    limit = f", limit {'/'.join(map(str, limits))}" if limits else ""
    return (
        f"tools    {tools['mean']:.2f} calls per trajectory (observed max {tools['max']:.0f}{limit}), "
        f"{percent(share)} used the tool; {turns['mean']:.2f} turns"
    )


def _reference_line(ref: dict[str, Any]) -> str:
    """The reference implementation's grader beside ours: what a published number would have been."""
    overall = ref["overall"]
    return (
        f"reference grader {percent(overall['accuracy'])} {_ci(overall)}  {_count(overall)}; "
        f"disagrees on {ref['disagree']} problems (only ours: {ref['only_harness']}, "
        f"only the reference's: {ref['only_reference']} samples)"
    )


def _ends_line(summary: dict[str, Any]) -> str:
    c = summary["counts"]
    return (
        f"ends     no answer {c['no_answer']}, tool-call limit {c['max_tool_calls']}, length {c['length']}, "
        f"engine errors {c['engine_errors']}; exec timeouts {c['exec_timeouts']}, errors {c['exec_errors']}, "
        f"limits {c['exec_limits']}"
    )


def _cost_line(summary: dict[str, Any]) -> str:
    cost = summary["cost"]
    cached = summary["counts"]["cached"]
    return (
        f"cost     {cost['prompt_tokens']['mean']:.0f} prompt + {cost['completion_tokens']['mean']:.0f} "
        f"completion tokens, {cost['seconds']['mean']:.2f} s per trajectory"
        + (f" ({cached} reused from the store)" if cached else "")
    )


def _terminal_row(name: str, group: dict[str, Any], cells: dict[str, Any], levels: Sequence[str]) -> str:
    by_level = "".join(f" {_short_pct(cells[lv]['accuracy']) if lv in cells else '-':>5}" for lv in levels)
    row = f"  {name[:24]:<24} {group['n']:>5} {percent(group['accuracy']):>6} {_ci(group):<13}{by_level}"
    return row.rstrip()


def format_terminal(summary: dict[str, Any]) -> list[str]:
    """A compact table for the end of a pytest run."""
    acc = summary["accuracy"]
    overall = acc["overall"]
    lines = [
        f"tir-harness: {_headline(summary)}",
        f"accuracy {percent(overall['accuracy']):>6} {_ci(overall)}  {_count(overall)}",
    ]
    if len(acc["by_dataset"]) > 1:
        lines.append(f"  {'dataset':<24} {'n':>5} {'acc':>6} 95% CI")
        lines += [_terminal_row(name, g, {}, []) for name, g in acc["by_dataset"].items()]
    levels = _levels(summary)
    if acc["by_subject"]:
        lines.append(
            f"  {'subject':<24} {'n':>5} {'acc':>6} {'95% CI':<13}" + "".join(f" {'L' + lv:>5}" for lv in levels)
        )
        lines += [
            _terminal_row(name, g, acc["by_subject_level"].get(name, {}), levels)
            for name, g in acc["by_subject"].items()
        ]
        if levels:
            # The level columns of this row cover every problem with a level, with or without a subject.
            every = sum(g["n"] for g in acc["by_subject"].values()) == overall["n"]
            lines.append(
                _terminal_row("(all subjects)" if every else "(all problems)", overall, acc["by_level"], levels)
            )
    elif levels:
        lines.append("  by level: " + ", ".join(f"L{lv} {percent(g['accuracy'])}" for lv, g in acc["by_level"].items()))
    if summary.get("reference_grader"):
        lines.append(_reference_line(summary["reference_grader"]))
    if summary.get("avg_at_k"):
        avg = summary["avg_at_k"]
        lines.append(
            f"{'avg@' + str(avg['k']):<9}{percent(avg['value'])} {interval(avg['ci'])} over {avg['n']} problems"
        )
    if summary["pass_at_k"]:
        lines.append(_k_line("pass@k", summary["pass_at_k"]))
        lines.append(_k_line("maj@k", summary["maj_at_k"]))
    lines += [_tool_line(summary), _ends_line(summary), _cost_line(summary)]
    cost = summary["cost"]
    if cost.get("thinking_tokens"):  # means over the trajectories that thought, not over all
        lines.append(
            f"thinking {cost['thinking_tokens']['mean']:.0f} thinking + {cost['answer_tokens']['mean']:.0f} answer "
            f"tokens per trajectory with a think block ({cost['thinking_records']})"
        )
    # Model names, run ids, subjects and dataset names come from servers and data files: shown, never acting.
    return [displayable(line) for line in lines]


def live_line(
    n_done: int,
    n_correct: int,
    n_total: int | None = None,
    *,
    per_second: float | None = None,
    seconds_left: float | None = None,
) -> str:
    """Running accuracy during a run, e.g. `tir-harness: 12/200 done, accuracy 58.3% [32.0, 80.7] (7/12)`,
    then the generation rate and the time left when known (`, 2.1 trajectories/s, about 3 min left`).

    `n_total` may be None (or 0) when the number of items is not known yet.
    """
    if n_done < 0 or not 0 <= n_correct <= n_done or (n_total is not None and n_total < 0):
        raise ValueError(
            f"live_line: need 0 <= n_correct <= n_done and n_total >= 0, got {n_correct}, {n_done}, {n_total}"
        )
    progress = f"{n_done}/{n_total}" if n_total else f"{n_done}"
    if n_done == 0:
        return f"tir-harness: {progress} done"
    lo, hi = stats.wilson_interval(n_correct, n_done)
    line = (
        f"tir-harness: {progress} done, accuracy {percent(n_correct / n_done)} "
        f"[{100 * lo:.1f}, {100 * hi:.1f}] ({n_correct}/{n_done})"
    )
    if per_second is not None:
        line += f", {per_second:.2g} trajectories/s" if per_second < 10 else f", {per_second:.0f} trajectories/s"
    if seconds_left is not None:
        line += f", about {duration(seconds_left)} left"
    return line


def duration(seconds: float) -> str:
    """A rough duration for people: `40 s`, `3 min`, `1 h 20 min`."""
    if seconds < 60:
        return f"{max(seconds, 1):.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def collection_line(per_dataset: dict[str, int], samples: int) -> str:
    """What a run will do, after collection: `tir-harness: 1,819 problems (gsm8k 1,319, math500 500), 1 sample
    each`."""
    total = sum(per_dataset.values())
    parts = ", ".join(f"{name} {count:,}" for name, count in sorted(per_dataset.items()))
    each = f"{samples} sample{'s' if samples != 1 else ''} each"
    return f"tir-harness: {total:,} problem{'s' if total != 1 else ''} ({parts}), {each}"


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _md_groups(title: str, groups: dict[str, dict[str, Any]]) -> list[str]:
    if not groups:
        return []
    rows = [(name, g["n"], percent(g["accuracy"]), _ci(g), _count(g)) for name, g in groups.items()]
    return [f"## {title}", ""] + _md_table((title.split()[-1], "n", "accuracy", "95% CI", "correct"), rows)


def format_markdown(summary: dict[str, Any], comparison: Comparison | None = None, plots: Sequence[str] = ()) -> str:
    """summary.md: the same numbers as summary.json, as tables."""
    run, acc = summary["run"], summary["accuracy"]
    lines = [f"# tir-harness report: {_headline(summary)}", ""]
    settings = [
        ("run", ", ".join(map(str, run["run_ids"]))),
        ("model", ", ".join(map(str, run["models"]))),
        (
            "prompt format / type",
            f"{', '.join(map(str, run['prompt_formats']))} / {', '.join(map(str, run['prompt_types']))}",
        ),
        ("grader version", ", ".join(map(str, run["grader_versions"]))),
        ("sampling", "; ".join(json.dumps(s, sort_keys=True) for s in run["sampling"])),
        ("max tool calls", ", ".join(map(str, run["max_tool_calls"]))),
    ]
    lines += _md_table(("setting", "value"), settings)
    overall = acc["overall"]
    lines += ["## Accuracy", ""]
    lines += _md_table(
        ("group", "n", "accuracy", "95% CI", "correct"),
        [("overall", overall["n"], percent(overall["accuracy"]), _ci(overall), _count(overall))],
    )
    ref = summary.get("reference_grader")
    if ref:
        lines += [
            f"Reference implementation's grader (ToRA's extraction and math_equal, docs/fidelity.md): "
            f"{percent(ref['overall']['accuracy'])} {_ci(ref['overall'])}, {_count(ref['overall'])}; the graders "
            f"disagree on {ref['disagree']} problems ({ref['only_harness']} samples only ours accepts, "
            f"{ref['only_reference']} only the reference's). Pass/fail uses ours.",
            "",
        ]
    if summary["samples"]["max"] > 1:
        lines += [
            "With several samples per problem, accuracy is the mean over problems of the fraction of samples "
            "that are correct; n counts problems.",
            "",
        ]
    lines += _md_groups("By dataset", acc["by_dataset"])
    lines += _md_groups("By subject", acc["by_subject"])
    lines += _md_groups("By level", acc["by_level"])
    if acc["by_subject_level"]:
        levels = _levels(summary)
        rows = []
        for subject, cells in acc["by_subject_level"].items():
            rows.append(
                [subject]
                + [f"{percent(cells[lv]['accuracy'])} (n={cells[lv]['n']})" if lv in cells else "-" for lv in levels]
            )
        lines += ["## Subject x level", ""] + _md_table(["subject"] + [f"level {lv}" for lv in levels], rows)
    if summary["pass_at_k"]:
        rows = [
            (k, percent(summary["pass_at_k"][k]["value"]), percent(summary["maj_at_k"][k]["value"]), v["n"])
            for k, v in summary["pass_at_k"].items()
        ]
        lines += ["## pass@k and maj@k", ""]
        if summary.get("avg_at_k"):
            avg = summary["avg_at_k"]
            lines += [
                f"avg@{avg['k']} (mean accuracy over the samples): {percent(avg['value'])} {interval(avg['ci'])}",
                "",
            ]
        lines += _md_table(("k", "pass@k", "maj@k", "problems"), rows)
    tools, turns = summary["tool_calls"], summary["turns"]
    lines += ["## Tool use", ""]
    lines += _md_table(
        ("", "mean", "median", "max (observed)"),
        [
            ("tool calls", f"{tools['mean']:.2f}", f"{tools['median']:g}", f"{tools['max']:g}"),
            ("turns", f"{turns['mean']:.2f}", f"{turns['median']:g}", f"{turns['max']:g}"),
        ],
    )
    lines += _md_table(
        ("tool calls", "trajectories", "correct"),
        [(c, h["records"], h["correct"]) for c, h in tools["histogram"].items()],
    )
    counts = summary["counts"]
    lines += ["## How trajectories ended", ""]
    lines += _md_table(("end reason", "trajectories"), summary["end_reasons"].items())
    lines += _md_table(("count", "value"), counts.items())
    if summary["exec_status"]:
        lines += _md_table(("executor status (per tool call)", "calls"), summary["exec_status"].items())
    cost = summary["cost"]
    lines += ["## Cost per trajectory", ""]
    lines += _md_table(
        ("", "mean", "median", "max", "total"),
        [
            (name, f"{d['mean']:.2f}", f"{d['median']:g}", f"{d['max']:g}", f"{d['total']:g}")
            for name, d in cost.items()
        ],
    )
    if comparison is not None:
        lines += ["## Comparison with the baseline", "", "```"] + format_comparison(comparison) + ["```", ""]
    if plots:
        lines += ["## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots] + [""]
    lines += ["Definitions of every number: docs/reports.md in tir-harness.", ""]
    return "\n".join(displayable(line) for line in lines)
