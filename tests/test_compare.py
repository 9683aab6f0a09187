"""Paired comparison, the regression gate and `tir-harness compare` on synthetic runs with known answers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tir_harness.analysis.compare import compare, gate
from tir_harness.analysis.render import format_comparison
from tir_harness.cli.compare import main
from tir_harness.records.load import ReportError, load_records

SAMPLING = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 1024, "seed": 0, "stop": ["```output"]}


def record(pid: str, correct: bool, sample: int = 0, **fields: Any) -> dict[str, Any]:
    base = {
        "schema_version": 1,
        "run_id": "run",
        "problem_id": pid,
        "dataset": "math",
        "subject": "algebra",
        "level": 2,
        "sample": sample,
        "question": f"question {pid}",
        "gold": "2",
        "prediction": "2" if correct else "3",
        "correct": correct,
        "grader_version": "1",
        "model": "m",
        "prompt_format": "plain",
        "prompt_type": "tora",
        "sampling": dict(SAMPLING),
        "max_tool_calls": 4,
        "turns": [],
        "tool_calls": 0,
    }
    base.update(fields)
    return base


def paired_runs(
    both: int, gained: int, lost: int, neither: int, **current_fields: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(current, baseline) with the given paired table, problem ids p0, p1, ... in table order."""
    outcomes = [(True, True)] * both + [(True, False)] * gained + [(False, True)] * lost + [(False, False)] * neither
    current = [record(f"p{i}", now, run_id="new", **current_fields) for i, (now, _) in enumerate(outcomes)]
    baseline = [record(f"p{i}", before, run_id="old") for i, (_, before) in enumerate(outcomes)]
    return current, baseline


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# --------------------------------------------------------------------------------------------- the gate


def test_a_real_drop_is_gated() -> None:
    # 100 problems: the baseline solves 60; the current run loses 15 of them and gains 2.
    current, baseline = paired_runs(both=45, gained=2, lost=15, neither=38)
    c = compare(current, baseline)
    assert (c.n, c.gained, c.lost) == (100, 2, 15)
    assert c.baseline_accuracy == pytest.approx(0.60)
    assert c.current_accuracy == pytest.approx(0.47)
    assert c.difference == pytest.approx(-0.13)
    # Exact McNemar by hand: 2 * P(X <= 2), X ~ Bin(17, 1/2) = 2 * (1 + 17 + 136) / 2^17.
    assert c.p_value == pytest.approx(2 * 154 / 2**17, rel=1e-12)
    assert c.difference_ci[1] < 0 < -c.difference_ci[0]
    result = gate(c)
    assert not result.passed
    assert "13.00 points" in result.reason and "dropped" in result.reason


def test_noise_is_not_gated() -> None:
    # 3 lost, 1 gained: a 2-point drop that a coin would produce (p = 2 * (1 + 4) / 16 = 0.625).
    current, baseline = paired_runs(both=50, gained=1, lost=3, neither=46)
    c = compare(current, baseline)
    assert c.p_value == pytest.approx(0.625)
    result = gate(c)
    assert result.passed
    assert "not significant" in result.reason


def test_a_gain_passes() -> None:
    current, baseline = paired_runs(both=45, gained=15, lost=2, neither=38)
    c = compare(current, baseline)
    assert c.difference == pytest.approx(0.13) and c.p_value < 0.01
    result = gate(c)
    assert result.passed and "no drop" in result.reason


def test_max_drop_and_alpha_tolerate_a_real_drop() -> None:
    c = compare(*paired_runs(both=45, gained=2, lost=15, neither=38))  # 13 points, p = 0.00235
    assert gate(c, max_drop=15).passed
    assert gate(c, max_drop=13).passed  # exactly at the tolerance: not "more than"
    assert not gate(c, max_drop=12.9).passed
    assert gate(c, alpha=0.001).passed
    assert not gate(c, alpha=0.01).passed
    assert gate(c, alpha=0.0).passed  # no p-value is below 0: the gate is off


def test_gate_rejects_bad_settings() -> None:
    c = compare(*paired_runs(1, 0, 0, 1))
    for kwargs in ({"max_drop": -1.0}, {"max_drop": float("nan")}, {"alpha": -0.1}, {"alpha": 1.5}):
        with pytest.raises(ValueError):
            gate(c, **kwargs)


def test_nothing_in_common_passes_with_a_reason() -> None:
    c = compare([record("a", True)], [record("b", False)])
    assert c.n == 0
    result = gate(c)
    assert result.passed and "nothing to gate" in result.reason


def test_published_paired_table_end_to_end() -> None:
    # Fagerland, Lydersen & Laake (2017), chapter 8, Cavo et al. (2012): [[59, 6], [16, 80]] with the second
    # measurement as baseline.  Newcombe CI -0.1186 to -0.0046, McNemar exact P = 0.052479.
    c = compare(*paired_runs(both=59, gained=6, lost=16, neither=80))
    assert c.difference_ci == pytest.approx((-0.1186, -0.0046), abs=6e-5)
    assert c.p_value == pytest.approx(0.052479, abs=5e-7)
    # A 6.2-point drop whose interval excludes 0, yet McNemar is not significant at 0.05: the gate passes.
    assert gate(c).passed
    assert not gate(c, alpha=0.06).passed


# ------------------------------------------------------------------------------------ matching and flips


def test_unmatched_problems_are_listed_and_excluded() -> None:
    current = [record("p1", True), record("p2", False), record("x1", True), record("x2", True)]
    baseline = [record("p1", True), record("p2", True), record("y1", False)]
    c = compare(current, baseline)
    assert c.n == 2
    assert c.only_current == (("x1", 0), ("x2", 0))
    assert c.only_baseline == (("y1", 0),)
    assert c.lost_ids == (("p2", 0),) and c.gained_ids == ()
    assert c.current_accuracy == 0.5 and c.baseline_accuracy == 1.0
    text = "\n".join(format_comparison(c))
    assert "2 only in current, 1 only in baseline" in text
    assert "only in current: x1, x2" in text and "only in baseline: y1" in text
    assert "lost: p2" in text


def test_pairs_match_by_problem_and_sample() -> None:
    current = [record("p", True, sample=0), record("p", False, sample=1)]
    baseline = [record("p", True, sample=0), record("p", True, sample=1), record("p", True, sample=2)]
    c = compare(current, baseline)
    assert c.n == 2
    assert c.lost_ids == (("p", 1),)
    assert c.only_baseline == (("p", 2),)
    assert "lost: p#1" in "\n".join(format_comparison(c))
    assert any("several samples" in w for w in c.warnings)


def test_flip_lists_are_cut_and_sorted_naturally() -> None:
    current, baseline = paired_runs(both=0, gained=0, lost=25, neither=0)
    c = compare(current, baseline)
    lost_line = next(line for line in format_comparison(c, show=3) if line.strip().startswith("lost:"))
    assert lost_line.strip() == "lost: p0, p1, p2, ... and 22 more"
    assert [pid for pid, _ in c.lost_ids[8:12]] == ["p8", "p9", "p10", "p11"]


def test_duplicate_records_keep_the_last_and_warn() -> None:
    current = [record("p", False), record("p", True)]
    c = compare(current, [record("p", True)])
    assert (c.n, c.both, c.lost) == (1, 1, 0)
    assert any("duplicate" in w for w in c.warnings)


def test_groups_split_the_table_by_subject() -> None:
    current = [record("a1", True), record("a2", False), record("g1", True, subject="geometry")]
    baseline = [record("a1", False), record("a2", True), record("g1", True, subject="geometry")]
    groups = {g.name: (g.both, g.gained, g.lost, g.neither) for g in compare(current, baseline).groups}
    assert groups == {"algebra": (0, 1, 1, 0), "geometry": (1, 0, 0, 0)}


# ------------------------------------------------------------------------------------------ warnings


def test_same_settings_give_no_warnings() -> None:
    current, baseline = paired_runs(3, 1, 1, 3, model="other-model")  # a new model is the point of comparing
    assert compare(current, baseline).warnings == ()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("prompt_format", "gemma-chat", "prompt_format differs (old -> new): plain -> gemma-chat"),
        ("grader_version", "2", "grader_version differs (old -> new): 1 -> 2"),
        (
            "sampling",
            {**SAMPLING, "temperature": 0.7},
            "sampling differs (old -> new): temperature 0.0 -> 0.7",
        ),
    ],
)
def test_different_settings_are_named(field: str, value: Any, expected: str) -> None:
    current, baseline = paired_runs(3, 1, 1, 3, **{field: value})
    c = compare(current, baseline)
    assert expected in c.warnings
    assert f"warning: {expected}" in format_comparison(c)


def test_changed_gold_is_warned() -> None:
    c = compare([record("p", True, gold="3")], [record("p", True)])
    assert any("different gold" in w and "p" in w for w in c.warnings)


def test_to_dict_is_json() -> None:
    current, baseline = paired_runs(3, 1, 2, 3)
    data = json.loads(json.dumps(compare(current, baseline).to_dict()))
    assert data["lost_ids"] == [{"problem_id": "p4", "sample": 0}, {"problem_id": "p5", "sample": 0}]
    assert data["n"] == 9 and len(data["difference_ci"]) == 2


# ----------------------------------------------------------------------------------------- loading


def test_load_records_from_a_directory_or_a_file(tmp_path: Path) -> None:
    records = [record("p1", True), record("p2", False)]
    file = write_jsonl(tmp_path / "run" / "trajectories.jsonl", records)
    file.write_text(file.read_text() + "\n   \n")  # blank lines are fine
    assert load_records(tmp_path / "run") == records
    assert load_records(file) == records


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"problem_id": "p2", "sample": 0, "correct": tru', r"trajectories\.jsonl:2: not valid JSON"),
        ("[1, 2]", r"trajectories\.jsonl:2: expected a JSON object"),
        ('{"problem_id": "p2", "sample": 0, "correct": "yes"}', r"trajectories\.jsonl:2: correct must be"),
        ('{"problem_id": "p2", "sample": -1, "correct": true}', r"trajectories\.jsonl:2: sample must be"),
        ('{"sample": 0, "correct": true}', r"trajectories\.jsonl:2: problem_id must be"),
        (
            '{"schema_version": 2, "problem_id": "p", "sample": 0, "correct": true}',
            r":2: schema_version 2 is newer",
        ),
        ('{"problem_id": "p", "sample": 0, "correct": true, "level": "3"}', r":2: level must be"),
    ],
)
def test_a_bad_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    file = tmp_path / "trajectories.jsonl"
    file.write_text(json.dumps(record("p1", True)) + "\n" + line + "\n")
    with pytest.raises(ReportError, match=message) as info:
        load_records(file)
    assert "\n" not in str(info.value)
    assert str(file) in str(info.value)


def test_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no such file"):
        load_records(tmp_path / "nope.jsonl")
    with pytest.raises(ReportError, match="not a run directory"):
        load_records(tmp_path)


# --------------------------------------------------------------------------------------------- CLI


def runs_on_disk(tmp_path: Path, both: int, gained: int, lost: int, neither: int) -> tuple[str, str]:
    current, baseline = paired_runs(both, gained, lost, neither)
    old = write_jsonl(tmp_path / "old" / "trajectories.jsonl", baseline)
    new = write_jsonl(tmp_path / "new.jsonl", current)
    return str(old.parent), str(new)


def test_cli_compare_prints_and_gates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = runs_on_disk(tmp_path, both=45, gained=2, lost=15, neither=38)
    assert main([old, new]) == 0  # without --gate a drop is reported, not failed
    out = capsys.readouterr().out
    assert "60.0%" in out and "47.0%" in out and "difference -13.0 points" in out
    assert main([old, new, "--gate"]) == 1
    assert "gate: FAILED" in capsys.readouterr().out
    assert main([old, new, "--gate", "--max-drop", "20"]) == 0
    assert main([old, new, "--gate", "--alpha", "0.001"]) == 0
    assert main([new, old, "--gate"]) == 0  # the other way round it is a gain


def test_the_tir_harness_command_runs_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tir_harness.cli.main import main as tir_harness

    old, new = runs_on_disk(tmp_path, both=45, gained=2, lost=15, neither=38)
    assert tir_harness(["compare", old, new, "--gate"]) == 1
    assert "gate: FAILED" in capsys.readouterr().out


def test_cli_noise_passes_the_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = runs_on_disk(tmp_path, both=50, gained=1, lost=3, neither=46)
    assert main([old, new, "--gate"]) == 0
    assert "gate: passed" in capsys.readouterr().out


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = runs_on_disk(tmp_path, both=1, gained=1, lost=0, neither=1)
    assert main([old, new, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gained"] == 1


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        (["--alpha", "2"], r"--alpha must be between 0 and 1"),
        (["--max-drop", "-1"], r"--max-drop must be"),
        (["--max-drop", "x"], r"argument --max-drop: invalid float value"),
        (["--bogus"], r"unrecognized arguments: --bogus"),
    ],
)
def test_cli_bad_options_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], pattern: str
) -> None:
    old, new = runs_on_disk(tmp_path, 1, 1, 1, 1)
    assert main([old, new, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(pattern, err)


def test_cli_bad_files_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = runs_on_disk(tmp_path, 1, 1, 1, 1)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(record("p0", True)) + "\n{oops\n")
    unrelated = write_jsonl(tmp_path / "unrelated.jsonl", [record("zzz", True)])
    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    cases = [
        ([old, str(broken)], rf"{re.escape(str(broken))}:2: not valid JSON"),
        ([old, str(tmp_path / "missing.jsonl")], r"missing\.jsonl: no such file"),
        ([old, str(unrelated)], r"no \(problem_id, sample\) in common"),
        ([old, str(empty)], r"empty\.jsonl: no records"),
        ([old], r"the following arguments are required: B"),
    ]
    for argv, pattern in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith("tir-harness compare: error: ") and re.search(pattern, err), err
