"""Paired comparison of two runs and the regression gate.

Two runs are compared on the (problem_id, sample) pairs they share.  Per pair each run is right or wrong,
which gives a paired 2x2 table; from it: both accuracies, their difference with Newcombe's paired interval,
the flips each way, and McNemar's exact test.  `gate` turns that into a pass/fail a CI job can trust: it
fails only for a drop that is both larger than a tolerance and statistically significant.

`tir-harness compare A B` runs this outside pytest (A is the baseline, B the current run, like `diff`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tir_harness.analysis import stats
from tir_harness.analysis.formats import p_value, percent
from tir_harness.util.text import one_line

PairKey = tuple[str, int]  # (problem_id, sample)

# Fields that change what a run measures; a baseline that differs in one is still compared, with a warning.
_SETTINGS = ("prompt_format", "prompt_type", "grader_version", "sampling", "max_tool_calls", "executor")


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


def _shown(value: Any) -> str:
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
                shown = ", ".join(sorted(_shown(v) for v in values.values()))
                warnings.append(f"{name} varies within {label}: {shown}")
        if len(cur_values) != 1 or len(base_values) != 1 or cur_values.keys() == base_values.keys():
            continue
        (cur_value,), (base_value,) = cur_values.values(), base_values.values()
        if isinstance(cur_value, dict) and isinstance(base_value, dict):
            parts = [
                f"{key} {_shown(base_value.get(key))} -> {_shown(cur_value.get(key))}"
                for key in sorted(set(cur_value) | set(base_value))
                if _canonical(cur_value.get(key)) != _canonical(base_value.get(key))
            ]
            detail = "; ".join(parts)
        else:
            detail = f"{_shown(base_value)} -> {_shown(cur_value)}"
        warnings.append(f"{name} differs ({base} -> {cur}): {one_line(detail, 200)}")
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
        f"{percent(c.baseline_accuracy)} -> {percent(c.current_accuracy)} on {c.n} pairs, "
        f"{c.gained} gained / {c.lost} lost, McNemar p = {p_value(c.p_value)}"
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


# ------------------------------------------------------------------------------------------------- CLI
