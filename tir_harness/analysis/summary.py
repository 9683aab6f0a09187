"""Summaries of a run: the numbers in summary.json / summary.md, the terminal table and the live line.

Everything is computed from the per-trajectory records (see schemas/trajectory.schema.json), so
`tir-harness report RUN` rebuilds exactly what the pytest run wrote.  docs/reports.md defines every number.

Accuracy with several samples per problem: each problem's score is the fraction of its samples that are
correct, and a group's accuracy is the mean of its problems' scores (so every problem weighs the same even
if a sample is missing).  Its Wilson interval uses n = the number of problems: samples of one problem are
not independent, and a score in [0, 1] with mean p has variance at most p(1 - p), so treating each problem
as one trial is conservative.  With one sample per problem this is the plain Wilson interval of
correct/total; with several samples it is also reported as avg@k (the AIME convention).  pass@k and maj@k
are reported separately.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from tir_harness.analysis import stats
from tir_harness.records.trajectory import END_ERROR, END_LENGTH, END_MAX_TOOL_CALLS

SUMMARY_VERSION = 1

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
    return {name: _group(members) for name, members in sorted(groups.items(), key=lambda kv: sort_key(kv[0]))}


def _reference(problems: dict[str, list[Record]]) -> dict[str, Any] | None:
    """Accuracy under the reference implementation's grader (records' `reference_correct`), beside ours.

    `disagree` counts problems where the two graders give a different verdict to at least one sample;
    `only_harness`/`only_reference` count samples that only one grader accepts.  None when no record carries
    a reference verdict (runs recorded before it existed)."""
    members = [s for s in problems.values() if any("reference_correct" in r for r in s)]
    if not members:
        return None
    scores = [sum(bool(r.get("reference_correct")) for r in s) / len(s) for s in members]
    correct = sum(bool(r.get("reference_correct")) for s in members for r in s)
    pairs = [(bool(r.get("correct")), bool(r.get("reference_correct"))) for s in members for r in s]
    return {
        "overall": _group_stats(scores, sum(len(s) for s in members), correct),
        "disagree": sum(any(bool(r.get("correct")) != bool(r.get("reference_correct")) for r in s) for s in members),
        "only_harness": sum(ours and not theirs for ours, theirs in pairs),
        "only_reference": sum(theirs and not ours for ours, theirs in pairs),
    }


def _group(members: Sequence[Sequence[Record]]) -> dict[str, Any]:
    return _group_stats(
        [_score(s) for s in members],
        sum(len(s) for s in members),
        sum(bool(r.get("correct")) for s in members for r in s),
    )


def sort_key(name: str) -> tuple[int, Any]:
    return (0, int(name)) if name.lstrip("-").isdigit() else (1, name)


def _distribution(values: Sequence[float]) -> dict[str, float]:
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


def _avg_at_k(problems: dict[str, list[Record]], overall: dict[str, Any]) -> dict[str, Any] | None:
    """avg@k, the AIME convention: the mean over problems of the fraction of their k samples that are correct.

    It is the overall accuracy under its own name, with the same Wilson interval over problems; `k` is the
    samples per problem (`k_min` the fewest, when a run is incomplete).  None with one sample per problem."""
    counts = [len(s) for s in problems.values()]
    if not counts or max(counts) < 2:
        return None
    return {
        "k": max(counts),
        "k_min": min(counts),
        "value": overall["accuracy"],
        "ci": overall["ci"],
        "n": overall["n"],
    }


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
        "reference_grader": _reference(problems),
        "avg_at_k": _avg_at_k(problems, accuracy["overall"]),
        "pass_at_k": pass_k,
        "maj_at_k": maj_k,
        "turns": _distribution([len(r.get("turns", [])) for r in kept]),
        "tool_calls": {
            **_distribution(tool_calls),
            "used": sum(c > 0 for c in tool_calls),
            "histogram": {str(c): histogram[c] for c in sorted(histogram)},
        },
        "end_reasons": dict(sorted(Counter(str(r.get("end_reason") or "unknown") for r in kept).items())),
        "exec_status": dict(sorted(exec_status.items())),
        "counts": {
            # An engine error is no answer from the model: counted once, under engine_errors.
            "no_answer": sum(r.get("prediction") is None and r.get("end_reason") != END_ERROR for r in kept),
            "max_tool_calls": sum(r.get("end_reason") == END_MAX_TOOL_CALLS for r in kept),
            "length": sum(r.get("end_reason") == END_LENGTH for r in kept),
            "engine_errors": sum(r.get("end_reason") == END_ERROR for r in kept),
            "exec_timeouts": exec_status.get(EXEC_TIMEOUT, 0),
            "exec_errors": exec_status.get(EXEC_ERROR, 0),
            "exec_limits": limits,
            "records_with_exec_timeout": with_timeout,
            "records_with_exec_failure": with_failure,
            "cached": sum(bool(r.get("cached")) for r in kept),
        },
        "cost": {
            "prompt_tokens": _distribution([float(r.get("prompt_tokens", 0)) for r in kept]),
            "completion_tokens": _distribution([float(r.get("completion_tokens", 0)) for r in kept]),
            "seconds": _distribution([float(r.get("seconds", 0.0)) for r in kept]),
            **_thinking_cost(kept),
        },
    }


def _thinking_cost(records: Sequence[Record]) -> dict[str, Any]:
    """Thinking and answer tokens over the records that counted them (a reasoning model's); nothing otherwise."""
    counted = [r for r in records if isinstance(r.get("thinking_tokens"), int)]
    if not counted:
        return {}
    return {
        "thinking_tokens": _distribution([float(r["thinking_tokens"]) for r in counted]),
        "answer_tokens": _distribution([float(r.get("answer_tokens") or 0) for r in counted]),
        "thinking_records": len(counted),
    }


# ------------------------------------------------------------------------------------------- rendering


# --------------------------------------------------------------------------------------------- writing


# ------------------------------------------------------------------------------------------------- CLI
