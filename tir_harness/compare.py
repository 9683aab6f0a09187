"""Paired comparison of two runs and the regression gate.

Two runs are compared on the (problem_id, sample) pairs they share.  Per pair each run is right or wrong,
which gives a paired 2x2 table; from it: both accuracies, their difference with Newcombe's paired interval,
the flips each way, and McNemar's exact test.  `gate` turns that into a pass/fail a CI job can trust: it
fails only for a drop that is both larger than a tolerance and statistically significant.

`tir-harness compare A B` runs this outside pytest (A is the baseline, B the current run, like `diff`).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

from tir_harness import stats
from tir_harness.jsonl import JsonlError, read_objects

SCHEMA_VERSION = 1  # the newest record format this module reads (see schemas/trajectory.schema.json)
TRAJECTORIES = "trajectories.jsonl"

PairKey = tuple[str, int]  # (problem_id, sample)

# Fields that change what a run measures; a baseline that differs in one is still compared, with a warning.
_SETTINGS = ("prompt_format", "prompt_type", "grader_version", "sampling", "max_tool_calls", "executor")


class ReportError(ValueError):
    """Bad input for a report or a comparison; the message is one line naming the file (and line)."""


@dataclass(frozen=True)
class GroupDelta:
    """The paired table of one group (a subject, or a dataset without subjects) of matched pairs."""

    name: str
    both: int  # right in both runs
    gained: int  # wrong in the baseline, right now
    lost: int  # right in the baseline, wrong now
    neither: int

    @property
    def n(self) -> int:
        return self.both + self.gained + self.lost + self.neither

    @property
    def current_correct(self) -> int:
        return self.both + self.gained

    @property
    def baseline_correct(self) -> int:
        return self.both + self.lost


@dataclass(frozen=True)
class Comparison:
    current_label: str
    baseline_label: str
    n: int  # matched (problem_id, sample) pairs
    both: int
    gained: int
    lost: int
    neither: int
    current_accuracy: float
    baseline_accuracy: float
    current_ci: tuple[float, float]
    baseline_ci: tuple[float, float]
    difference: float  # current - baseline, as a fraction
    difference_ci: tuple[float, float]  # Newcombe (1998) method 10, 95%
    p_value: float  # exact McNemar, two-sided
    gained_ids: tuple[PairKey, ...]
    lost_ids: tuple[PairKey, ...]
    only_current: tuple[PairKey, ...]  # unmatched, excluded from every number above
    only_baseline: tuple[PairKey, ...]
    groups: tuple[GroupDelta, ...]
    warnings: tuple[str, ...]

    @property
    def current_correct(self) -> int:
        return self.both + self.gained

    @property
    def baseline_correct(self) -> int:
        return self.both + self.lost

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("gained_ids", "lost_ids", "only_current", "only_baseline"):
            data[name] = [{"problem_id": pid, "sample": s} for pid, s in getattr(self, name)]
        for name in ("current_ci", "baseline_ci", "difference_ci"):
            data[name] = list(getattr(self, name))
        data["groups"] = [asdict(g) for g in self.groups]
        data["warnings"] = list(self.warnings)
        return data


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reason: str


# ---------------------------------------------------------------------------------------------- loading


def _record_problem(record: dict[str, Any]) -> str | None:
    """Why `record` cannot be used, or None when it can."""
    version = record.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        return f"schema_version must be an integer, got {version!r}"
    if version > SCHEMA_VERSION:
        return f"schema_version {version} is newer than this tir-harness reads ({SCHEMA_VERSION})"
    pid = record.get("problem_id")
    if not isinstance(pid, str) or not pid:
        return "problem_id must be a non-empty string"
    sample = record.get("sample")
    if not isinstance(sample, int) or isinstance(sample, bool) or sample < 0:
        return f"sample must be an integer >= 0, got {sample!r}"
    if not isinstance(record.get("correct"), bool):
        return f"correct must be true or false, got {record.get('correct')!r}"
    level = record.get("level")
    if level is not None and (not isinstance(level, int) or isinstance(level, bool)):
        return f"level must be an integer or null, got {level!r}"
    for name in ("dataset", "subject", "prediction"):
        if record.get(name) is not None and not isinstance(record[name], str):
            return f"{name} must be a string or null, got {record[name]!r}"
    for name in ("tool_calls", "prompt_tokens", "completion_tokens"):
        value = record.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{name} must be an integer, got {value!r}"
    if not isinstance(record.get("seconds", 0.0), (int, float)):
        return f"seconds must be a number, got {record.get('seconds')!r}"
    turns = record.get("turns", [])
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        return "turns must be a list of objects"
    return None


def trajectories_path(path: str | Path) -> Path:
    """The trajectories file of a run directory, or `path` itself when it is a file."""
    path = Path(path)
    if path.is_dir():
        candidate = path / TRAJECTORIES
        if not candidate.is_file():
            raise ReportError(f"{path}: not a run directory (no {TRAJECTORIES} in it)")
        return candidate
    if not path.exists():
        raise ReportError(f"{path}: no such file or directory")
    return path


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a run directory or a trajectories.jsonl, checked line by line.

    Blank lines are skipped; anything else that is not a usable record raises `ReportError` naming the file
    and the line.
    """
    file = trajectories_path(path)
    records: list[dict[str, Any]] = []
    try:
        for lineno, record in read_objects(file):
            problem = _record_problem(record)
            if problem is not None:
                raise ReportError(f"{file}:{lineno}: {_one_line(problem)}")
            records.append(record)
    except JsonlError as exc:
        raise ReportError(str(exc)) from None
    return records


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -------------------------------------------------------------------------------------------- comparing


def _natural(key: PairKey) -> tuple[Any, ...]:
    """Sort ids the way people read them: algebra/2 before algebra/10."""
    parts = re.split(r"(\d+)", key[0])
    return (tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts), key[1])


def pair_key(record: dict[str, Any]) -> PairKey:
    return (str(record["problem_id"]), int(record.get("sample", 0)))


def _index(records: Iterable[dict[str, Any]], label: str, warnings: list[str]) -> dict[PairKey, dict[str, Any]]:
    index: dict[PairKey, dict[str, Any]] = {}
    duplicates = 0
    for record in records:
        key = pair_key(record)
        duplicates += key in index
        index[key] = record  # the last line wins: a re-run appends after the first attempt
    if duplicates:
        warnings.append(f"{label} has {duplicates} duplicate (problem_id, sample) records; the last one counts")
    return index


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _describe(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _setting_warnings(
    current: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]], cur: str, base: str
) -> list[str]:
    """One warning per setting that differs between the runs (or varies inside one), naming the values."""
    warnings: list[str] = []
    for name in _SETTINGS:
        cur_values = {_canonical(r.get(name)): r.get(name) for r in current if name in r}
        base_values = {_canonical(r.get(name)): r.get(name) for r in baseline if name in r}
        for label, values in ((cur, cur_values), (base, base_values)):
            if len(values) > 1:
                shown = ", ".join(sorted(_describe(v) for v in values.values()))
                warnings.append(f"{name} varies within {label}: {shown}")
        if len(cur_values) != 1 or len(base_values) != 1 or cur_values.keys() == base_values.keys():
            continue
        (cur_value,), (base_value,) = cur_values.values(), base_values.values()
        if isinstance(cur_value, dict) and isinstance(base_value, dict):
            parts = [
                f"{key} {_describe(base_value.get(key))} -> {_describe(cur_value.get(key))}"
                for key in sorted(set(cur_value) | set(base_value))
                if _canonical(cur_value.get(key)) != _canonical(base_value.get(key))
            ]
            detail = "; ".join(parts)
        else:
            detail = f"{_describe(base_value)} -> {_describe(cur_value)}"
        warnings.append(f"{name} differs ({base} -> {cur}): {_one_line(detail)}")
    return warnings


def _content_warnings(pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> list[str]:
    """Matched pairs whose question or gold answer changed are not the same problem any more."""
    warnings: list[str] = []
    for name in ("question", "gold"):
        changed = [
            pair_key(c)[0] for c, b in pairs if name in c and name in b and _canonical(c[name]) != _canonical(b[name])
        ]
        if changed:
            warnings.append(f"{len(changed)} matched records have a different {name}, e.g. {changed[0]}")
    return warnings


def _group_name(record: dict[str, Any]) -> str:
    return str(record.get("subject") or record.get("dataset") or "all")


def _label(records: Sequence[dict[str, Any]], default: str) -> str:
    run_ids = {r.get("run_id") for r in records if r.get("run_id")}
    return str(next(iter(run_ids))) if len(run_ids) == 1 else default


def compare(
    current_records: Iterable[dict[str, Any]],
    baseline_records: Iterable[dict[str, Any]],
    *,
    current_label: str | None = None,
    baseline_label: str | None = None,
) -> Comparison:
    """Compare the current run with a baseline on their shared (problem_id, sample) pairs."""
    current, baseline = list(current_records), list(baseline_records)
    cur_label = current_label or _label(current, "current")
    base_label = baseline_label or _label(baseline, "baseline")
    if cur_label == base_label:
        cur_label, base_label = f"{cur_label} (current)", f"{base_label} (baseline)"
    warnings: list[str] = []
    cur_index = _index(current, cur_label, warnings)
    base_index = _index(baseline, base_label, warnings)
    matched = sorted(cur_index.keys() & base_index.keys(), key=_natural)
    pairs = [(cur_index[k], base_index[k]) for k in matched]
    warnings += _setting_warnings(current, baseline, cur_label, base_label)
    warnings += _content_warnings(pairs)

    cells = {"both": 0, "gained": 0, "lost": 0, "neither": 0}
    groups: dict[str, dict[str, int]] = {}
    gained_ids: list[PairKey] = []
    lost_ids: list[PairKey] = []
    for key, (cur, base) in zip(matched, pairs, strict=True):
        now, before = bool(cur["correct"]), bool(base["correct"])
        cell = "both" if now and before else "gained" if now else "lost" if before else "neither"
        cells[cell] += 1
        group = groups.setdefault(_group_name(cur), {"both": 0, "gained": 0, "lost": 0, "neither": 0})
        group[cell] += 1
        if cell == "gained":
            gained_ids.append(key)
        elif cell == "lost":
            lost_ids.append(key)

    n = len(matched)
    cur_correct, base_correct = cells["both"] + cells["gained"], cells["both"] + cells["lost"]
    diff, lower, upper = stats.paired_difference(cells["both"], cells["gained"], cells["lost"], cells["neither"])
    if n and any(s > 0 for _, s in matched):
        warnings.append(
            "several samples per problem: McNemar treats every (problem, sample) pair as independent, "
            "so its p-value is optimistic"
        )
    return Comparison(
        current_label=cur_label,
        baseline_label=base_label,
        n=n,
        current_accuracy=cur_correct / n if n else 0.0,
        baseline_accuracy=base_correct / n if n else 0.0,
        current_ci=stats.wilson_interval(cur_correct, n),
        baseline_ci=stats.wilson_interval(base_correct, n),
        difference=diff,
        difference_ci=(lower, upper),
        p_value=stats.mcnemar_exact(cells["gained"], cells["lost"]),
        gained_ids=tuple(gained_ids),
        lost_ids=tuple(lost_ids),
        only_current=tuple(sorted(cur_index.keys() - base_index.keys(), key=_natural)),
        only_baseline=tuple(sorted(base_index.keys() - cur_index.keys(), key=_natural)),
        groups=tuple(GroupDelta(name, **counts) for name, counts in sorted(groups.items())),
        warnings=tuple(warnings),
        **cells,
    )


# -------------------------------------------------------------------------------------------- the gate


def gate(comparison: Comparison, max_drop: float = 0.0, alpha: float = 0.05) -> GateResult:
    """Fail only if accuracy dropped by more than `max_drop` percentage points AND McNemar's p < `alpha`."""
    if not math.isfinite(max_drop) or max_drop < 0:
        raise ValueError(f"--max-drop must be a number of percentage points >= 0, got {max_drop}")
    if not 0 <= alpha <= 1:  # 0 never fails the gate; 1 fails it on any drop beyond max_drop with p < 1
        raise ValueError(f"--alpha must be between 0 and 1, got {alpha}")
    c = comparison
    if c.n == 0:
        return GateResult(True, "no (problem_id, sample) pairs in common with the baseline: nothing to gate")
    # From the counts rather than the two float accuracies, so that an exact tie with max_drop stays a tie.
    drop = (c.lost - c.gained) * 100 / c.n
    move = (
        f"{_pct(c.baseline_accuracy)} -> {_pct(c.current_accuracy)} on {c.n} pairs, "
        f"{c.gained} gained / {c.lost} lost, McNemar p = {_p(c.p_value)}"
    )
    if drop <= 0:
        return GateResult(True, f"no drop ({move})")
    if drop <= max_drop + 1e-9:
        return GateResult(True, f"drop of {drop:.2f} points is within --max-drop {max_drop:g} ({move})")
    if c.p_value >= alpha:
        return GateResult(True, f"drop of {drop:.2f} points is not significant at alpha {alpha:g} ({move})")
    return GateResult(
        False,
        f"accuracy dropped {drop:.2f} points (more than --max-drop {max_drop:g}), "
        f"significant at alpha {alpha:g} ({move})",
    )


# ---------------------------------------------------------------------------------------------- output


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ci(ci: tuple[float, float]) -> str:
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _p(p: float) -> str:
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.1e}"


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
        f"baseline {c.baseline_label:<{width}}  {_pct(c.baseline_accuracy):>6} {_ci(c.baseline_ci)}"
        f"  ({c.baseline_correct}/{c.n})",
        f"current  {c.current_label:<{width}}  {_pct(c.current_accuracy):>6} {_ci(c.current_ci)}"
        f"  ({c.current_correct}/{c.n})",
        f"difference {100 * c.difference:+.1f} points, 95% CI [{100 * c.difference_ci[0]:+.1f}, "
        f"{100 * c.difference_ci[1]:+.1f}] (paired, Newcombe)",
        f"flips: {c.gained} gained (wrong -> right), {c.lost} lost (right -> wrong); exact McNemar p = {_p(c.p_value)}",
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
    return lines


# ------------------------------------------------------------------------------------------------- CLI


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad options in one line and lets `main` choose the exit status."""

    def error(self, message: str) -> NoReturn:
        raise ReportError(f"{self.prog}: {message}")


def _parser() -> _Parser:
    parser = _Parser(
        prog="tir-harness compare",
        description="Compare run B (current) with run A (baseline) on their shared (problem_id, sample).",
    )
    parser.add_argument("baseline", metavar="A", help="baseline: a run directory or a trajectories.jsonl")
    parser.add_argument("current", metavar="B", help="current run: a run directory or a trajectories.jsonl")
    parser.add_argument("--gate", action="store_true", help="exit 1 when accuracy dropped significantly")
    parser.add_argument("--max-drop", type=float, default=0.0, help="tolerated drop, percentage points (0)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level of the gate (0.05)")
    parser.add_argument("--show", type=int, default=20, help="ids listed per flip list (20)")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`tir-harness compare A B [--gate --max-drop X --alpha Y]`: 0 ok, 1 gate failed, 2 bad input."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        if args.show < 0:
            raise ReportError(f"--show must be >= 0, got {args.show}")
        _check_gate_options(args.max_drop, args.alpha)
        baseline = load_records(args.baseline)
        current = load_records(args.current)
        for path, records in ((args.baseline, baseline), (args.current, current)):
            if not records:
                raise ReportError(f"{path}: no records")
        comparison = compare(current, baseline, current_label=str(args.current), baseline_label=str(args.baseline))
        if comparison.n == 0:
            raise ReportError(f"{args.current}: no (problem_id, sample) in common with {args.baseline}")
    except ReportError as exc:
        print(f"tir-harness compare: error: {_one_line(str(exc), 400)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2))
    else:
        print("\n".join(format_comparison(comparison, show=args.show)))
    if not args.gate:
        return 0
    result = gate(comparison, args.max_drop, args.alpha)
    print(f"gate: {'passed' if result.passed else 'FAILED'}: {result.reason}")
    return 0 if result.passed else 1


def _check_gate_options(max_drop: float, alpha: float) -> None:
    if not math.isfinite(max_drop) or max_drop < 0:
        raise ReportError(f"--max-drop must be a number of percentage points >= 0, got {max_drop:g}")
    if not 0 <= alpha <= 1:
        raise ReportError(f"--alpha must be between 0 and 1, got {alpha:g}")
