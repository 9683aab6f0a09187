"""Summaries of a run: the numbers in summary.json / summary.md, the terminal table and the live line.

Everything is computed from the per-trajectory records (see schemas/trajectory.schema.json), so
`tir-harness report RUN` rebuilds exactly what the pytest run wrote.  docs/reports.md defines every number.

Accuracy with several samples per problem: each problem's score is the fraction of its samples that are
correct, and a group's accuracy is the mean of its problems' scores (so every problem weighs the same even
if a sample is missing).  Its Wilson interval uses n = the number of problems: samples of one problem are
not independent, and a score in [0, 1] with mean p has variance at most p(1 - p), so treating each problem
as one trial is conservative.  With one sample per problem this is the plain Wilson interval of
correct/total.  pass@k and maj@k are reported separately.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from tir_harness import stats
from tir_harness.compare import Comparison, ReportError, compare, format_comparison, load_records

SUMMARY_VERSION = 1
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"

# The executor's statuses (tir_harness executor): "ok" | "error" | "timeout" | "memory" | "output_limit" |
# "killed".  "error" is the model's code raising, an ordinary part of tool use; the others are limits.
EXEC_OK, EXEC_TIMEOUT, EXEC_ERROR = "ok", "timeout", "error"

Record = dict[str, Any]


# ------------------------------------------------------------------------------------------ the numbers


def _problems(records: Iterable[Record]) -> dict[str, list[Record]]:
    """Records grouped by problem_id, samples in order; a repeated (problem, sample) keeps its last record."""
    by_key: dict[tuple[str, int], Record] = {}
    for record in records:
        by_key[(str(record["problem_id"]), int(record.get("sample", 0)))] = record
    problems: dict[str, list[Record]] = defaultdict(list)
    for (pid, _), record in sorted(by_key.items()):
        problems[pid].append(record)
    return dict(problems)


def _score(samples: Sequence[Record]) -> float:
    return sum(bool(r.get("correct")) for r in samples) / len(samples)


def _group_stats(scores: Sequence[float], records: int, correct: int) -> dict[str, Any]:
    """Accuracy of a group of problems from their per-problem scores."""
    n = len(scores)
    total = sum(scores)
    lo, hi = stats.wilson_interval(min(total, n), n)
    return {
        "n": n,
        "records": records,
        "correct": correct,
        "accuracy": total / n if n else 0.0,
        "ci": [lo, hi],
    }


def _grouped(problems: dict[str, list[Record]], key: Any) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[list[Record]]] = defaultdict(list)
    for samples in problems.values():
        name = key(samples[0])
        if name is not None:
            groups[str(name)].append(samples)
    return {name: _group(members) for name, members in sorted(groups.items(), key=lambda kv: _sort_key(kv[0]))}


def _group(members: Sequence[Sequence[Record]]) -> dict[str, Any]:
    return _group_stats(
        [_score(s) for s in members],
        sum(len(s) for s in members),
        sum(bool(r.get("correct")) for s in members for r in s),
    )


def _sort_key(name: str) -> tuple[int, Any]:
    return (0, int(name)) if name.lstrip("-").isdigit() else (1, name)


def _describe(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "median": 0.0, "max": 0.0, "total": 0.0}
    return {
        "mean": statistics.fmean(values),
        "median": float(statistics.median(values)),
        "max": float(max(values)),
        "total": float(sum(values)),
    }


def _vote_key(record: Record) -> str | None:
    prediction = record.get("prediction")
    return None if prediction is None else "".join(str(prediction).split())


def _maj_blocks(samples: Sequence[Record], k: int) -> float:
    """maj@k of one problem: the mean over its floor(N/k) disjoint blocks of k consecutive samples.

    Using every block rather than only the first k samples makes maj@1 equal the mean accuracy and lowers
    the variance of maj@k for small k.
    """
    votes = [(_vote_key(r), bool(r.get("correct"))) for r in samples]
    blocks = [votes[start : start + k] for start in range(0, len(votes) - k + 1, k)]
    return statistics.fmean(stats.maj_at_k(block, k) for block in blocks)


def _sampling_metrics(problems: dict[str, list[Record]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """pass@k (unbiased) and maj@k (disjoint blocks of k samples) for k = 1, 2, 4, ... up to N and N."""
    most = max((len(s) for s in problems.values()), default=0)
    if most < 2:
        return {}, {}
    pass_k: dict[str, Any] = {}
    maj_k: dict[str, Any] = {}
    for k in stats.powers_of_two_upto(most):
        eligible = [s for s in problems.values() if len(s) >= k]
        passes = [stats.pass_at_k(len(s), sum(bool(r.get("correct")) for r in s), k) for s in eligible]
        votes = [_maj_blocks(s, k) for s in eligible]
        pass_k[str(k)] = {"value": statistics.fmean(passes), "n": len(eligible)}
        maj_k[str(k)] = {"value": statistics.fmean(votes), "n": len(eligible)}
    return pass_k, maj_k


def _distinct(records: Sequence[Record], name: str) -> list[Any]:
    seen: dict[str, Any] = {}
    for record in records:
        if name in record:
            seen.setdefault(json.dumps(record[name], sort_keys=True, default=str), record[name])
    return list(seen.values())


def summarize(records: Iterable[Record]) -> dict[str, Any]:
    """Every number of the report, as plain JSON-ready data (docs/reports.md defines each one)."""
    records = list(records)
    problems = _problems(records)
    kept = [r for samples in problems.values() for r in samples]
    samples_per_problem = [len(s) for s in problems.values()]

    accuracy = {
        "overall": _group(list(problems.values())),
        "by_dataset": _grouped(problems, lambda r: r.get("dataset")),
        "by_subject": _grouped(problems, lambda r: r.get("subject")),
        "by_level": _grouped(problems, lambda r: r.get("level")),
        "by_subject_level": {},
    }
    subjects: dict[str, dict[str, list[Record]]] = defaultdict(dict)
    for pid, samples in problems.items():
        if samples[0].get("subject") is not None and samples[0].get("level") is not None:
            subjects[str(samples[0]["subject"])][pid] = samples
    accuracy["by_subject_level"] = {
        subject: _grouped(members, lambda r: r.get("level")) for subject, members in sorted(subjects.items())
    }
    pass_k, maj_k = _sampling_metrics(problems)

    tool_calls = [int(r.get("tool_calls", 0)) for r in kept]
    histogram: dict[int, dict[str, int]] = defaultdict(lambda: {"records": 0, "correct": 0})
    for record, calls in zip(kept, tool_calls, strict=True):
        histogram[calls]["records"] += 1
        histogram[calls]["correct"] += bool(record.get("correct"))
    exec_status: Counter[str] = Counter()
    with_timeout = with_failure = 0
    for record in kept:
        statuses = [t.get("exec_status") for t in record.get("turns", []) if t.get("exec_status") is not None]
        exec_status.update(str(s) for s in statuses)
        with_timeout += EXEC_TIMEOUT in statuses
        with_failure += any(s != EXEC_OK for s in statuses)
    limits = sum(n for s, n in exec_status.items() if s not in (EXEC_OK, EXEC_ERROR, EXEC_TIMEOUT))

    return {
        "summary_version": SUMMARY_VERSION,
        "run": {
            "run_ids": _distinct(kept, "run_id"),
            "models": _distinct(kept, "model"),
            "prompt_formats": _distinct(kept, "prompt_format"),
            "prompt_types": _distinct(kept, "prompt_type"),
            "grader_versions": _distinct(kept, "grader_version"),
            "sampling": _distinct(kept, "sampling"),
            "max_tool_calls": _distinct(kept, "max_tool_calls"),
        },
        "records": len(kept),
        "duplicates": len(records) - len(kept),
        "problems": len(problems),
        "samples": {"min": min(samples_per_problem, default=0), "max": max(samples_per_problem, default=0)},
        "accuracy": accuracy,
        "pass_at_k": pass_k,
        "maj_at_k": maj_k,
        "turns": _describe([len(r.get("turns", [])) for r in kept]),
        "tool_calls": {
            **_describe(tool_calls),
            "used": sum(c > 0 for c in tool_calls),
            "histogram": {str(c): histogram[c] for c in sorted(histogram)},
        },
        "end_reasons": dict(sorted(Counter(str(r.get("end_reason") or "unknown") for r in kept).items())),
        "exec_status": dict(sorted(exec_status.items())),
        "counts": {
            "no_answer": sum(r.get("prediction") is None for r in kept),
            "max_tool_calls": sum(r.get("end_reason") == "max_tool_calls" for r in kept),
            "length": sum(r.get("end_reason") == "length" for r in kept),
            "engine_errors": sum(r.get("end_reason") == "error" for r in kept),
            "exec_timeouts": exec_status.get(EXEC_TIMEOUT, 0),
            "exec_errors": exec_status.get(EXEC_ERROR, 0),
            "exec_limits": limits,
            "records_with_exec_timeout": with_timeout,
            "records_with_exec_failure": with_failure,
            "cached": sum(bool(r.get("cached")) for r in kept),
        },
        "cost": {
            "prompt_tokens": _describe([float(r.get("prompt_tokens", 0)) for r in kept]),
            "completion_tokens": _describe([float(r.get("completion_tokens", 0)) for r in kept]),
            "seconds": _describe([float(r.get("seconds", 0.0)) for r in kept]),
        },
    }


# ------------------------------------------------------------------------------------------- rendering


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _short_pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _ci(group: dict[str, Any]) -> str:
    lo, hi = group["ci"]
    return f"[{100 * lo:.1f}, {100 * hi:.1f}]"


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
    return sorted(levels, key=_sort_key)


def _k_line(name: str, table: dict[str, Any]) -> str:
    return f"{name:<9}" + "  ".join(f"{k}: {_pct(v['value'])}" for k, v in table.items())


def _tool_line(summary: dict[str, Any]) -> str:
    tools, turns = summary["tool_calls"], summary["turns"]
    share = tools["used"] / summary["records"] if summary["records"] else 0.0
    return (
        f"tools    {tools['mean']:.2f} calls per trajectory (max {tools['max']:.0f}), "
        f"{_pct(share)} used the tool; {turns['mean']:.2f} turns"
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
    row = f"  {name[:24]:<24} {group['n']:>5} {_pct(group['accuracy']):>6} {_ci(group):<13}{by_level}"
    return row.rstrip()


def format_terminal(summary: dict[str, Any]) -> list[str]:
    """A compact table for the end of a pytest run."""
    acc = summary["accuracy"]
    overall = acc["overall"]
    lines = [
        f"tir-harness: {_headline(summary)}",
        f"accuracy {_pct(overall['accuracy']):>6} {_ci(overall)}  {_count(overall)}",
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
        lines.append("  by level: " + ", ".join(f"L{lv} {_pct(g['accuracy'])}" for lv, g in acc["by_level"].items()))
    if summary["pass_at_k"]:
        lines.append(_k_line("pass@k", summary["pass_at_k"]))
        lines.append(_k_line("maj@k", summary["maj_at_k"]))
    lines += [_tool_line(summary), _ends_line(summary), _cost_line(summary)]
    return lines


def live_line(n_done: int, n_correct: int, n_total: int | None = None) -> str:
    """Running accuracy during a run, e.g. `tir-harness: 12/200 done, accuracy 58.3% [32.0, 80.7] (7/12)`.

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
    return (
        f"tir-harness: {progress} done, accuracy {_pct(n_correct / n_done)} "
        f"[{100 * lo:.1f}, {100 * hi:.1f}] ({n_correct}/{n_done})"
    )


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _md_groups(title: str, groups: dict[str, dict[str, Any]]) -> list[str]:
    if not groups:
        return []
    rows = [(name, g["n"], _pct(g["accuracy"]), _ci(g), _count(g)) for name, g in groups.items()]
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
        [("overall", overall["n"], _pct(overall["accuracy"]), _ci(overall), _count(overall))],
    )
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
                + [f"{_pct(cells[lv]['accuracy'])} (n={cells[lv]['n']})" if lv in cells else "-" for lv in levels]
            )
        lines += ["## Subject x level", ""] + _md_table(["subject"] + [f"level {lv}" for lv in levels], rows)
    if summary["pass_at_k"]:
        rows = [
            (k, _pct(summary["pass_at_k"][k]["value"]), _pct(summary["maj_at_k"][k]["value"]), v["n"])
            for k, v in summary["pass_at_k"].items()
        ]
        lines += ["## pass@k and maj@k", ""] + _md_table(("k", "pass@k", "maj@k", "problems"), rows)
    tools, turns = summary["tool_calls"], summary["turns"]
    lines += ["## Tool use", ""]
    lines += _md_table(
        ("", "mean", "median", "max"),
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
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- writing


def _write_atomic(path: Path, text: str) -> None:
    """Readers (a CI step, a dashboard) never see a half-written summary."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_summary(
    run_dir: str | Path,
    records: Iterable[Record],
    baseline: Iterable[Record] | None = None,
    *,
    plots: bool = True,
) -> dict[str, Any]:
    """Write summary.json, summary.md and the plots into `run_dir`; return the summary.

    With `baseline` records the summary also holds the comparison and a comparison plot is drawn.  Plots
    need matplotlib (the `reports` extra); without it they are skipped and summary.json says why.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    records = list(records)
    summary = summarize(records)
    comparison = compare(records, baseline) if baseline is not None else None
    if comparison is not None:
        summary["comparison"] = comparison.to_dict()
    written: list[str] = []
    if plots:
        try:
            plotting = importlib.import_module("tir_harness.plots")
        except ImportError as exc:  # matplotlib missing: the numbers matter more than the pictures
            summary["plots_skipped"] = f"matplotlib is not available ({exc})"
        else:
            written = [p.name for p in plotting.write_plots(run_dir, summary, comparison)]
    summary["plots"] = written
    _write_atomic(run_dir / SUMMARY_JSON, json.dumps(summary, indent=2, sort_keys=False) + "\n")
    _write_atomic(run_dir / SUMMARY_MD, format_markdown(summary, comparison, written))
    return summary


# ------------------------------------------------------------------------------------------------- CLI


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ReportError(f"{self.prog}: {message}")


def _parser() -> _Parser:
    parser = _Parser(prog="tir-harness report", description="Rebuild summaries and plots of a run.")
    parser.add_argument("run", metavar="RUN", help="a run directory or a trajectories.jsonl")
    parser.add_argument("--baseline", help="compare with this run directory or trajectories.jsonl")
    parser.add_argument("--out", help="write here instead of the run's directory")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`tir-harness report RUN [--baseline B] [--out DIR] [--no-plots]`: 0 ok, 2 bad input."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        records = load_records(args.run)
        if not records:
            raise ReportError(f"{args.run}: no records")
        baseline = load_records(args.baseline) if args.baseline else None
        run = Path(args.run)
        out = Path(args.out) if args.out else (run if run.is_dir() else run.parent)
        if out.exists() and not out.is_dir():
            raise ReportError(f"{out}: not a directory")
        try:
            summary = write_summary(out, records, baseline, plots=not args.no_plots)
        except OSError as exc:
            raise ReportError(f"{out}: cannot write the report ({exc.strerror or exc})") from None
    except ReportError as exc:
        print(f"tir-harness report: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print("\n".join(format_terminal(summary)))
    if "comparison" in summary:
        print("\n".join(format_comparison(compare(records, baseline or []))))
    files = [SUMMARY_JSON, SUMMARY_MD, *summary["plots"]]
    print(f"wrote {', '.join(str(out / f) for f in files)}")
    if "plots_skipped" in summary:
        print(f"plots skipped: {summary['plots_skipped']}")
    return 0
