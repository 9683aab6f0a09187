"""`tir-harness regrade FILE.jsonl`: flips, totals, --output, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tir_harness.cli.main import main as cli_main
from tir_harness.cli.regrade import main
from tir_harness.grading import GRADER_VERSION


def write(path: Path, records: list[dict | str]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


REPORT = [
    # was wrongly marked incorrect by an older grader
    {
        "problem_id": "math/1",
        "sample": 0,
        "response": r"so \boxed{\frac12}",
        "gold": "0.5",
        "correct": False,
        "grader_version": "0.9",
    },
    # was wrongly marked correct
    {"problem_id": "math/2", "sample": 1, "prediction": "3", "gold": "4", "correct": True, "grader_version": "0.9"},
    # unchanged
    {"problem_id": "gsm8k/7", "sample": 0, "response": "#### 1,000", "gold": "1000", "correct": True},
    # no previous verdict; a numeric gold as SVAMP stores it
    {"prediction": "145", "gold": 145.0},
]


def test_prints_flips_and_totals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(write(tmp_path / "run.jsonl", REPORT))]) == 0
    out = capsys.readouterr().out
    assert "math/1 #0: incorrect -> correct (equal as numbers)" in out
    assert "math/2 #1: correct -> incorrect (different values: 3 vs 4)" in out
    assert "gsm8k/7" not in out
    assert f"4 records re-graded with grader {GRADER_VERSION} (records graded by 0.9)" in out
    assert "correct before: 2/3 (66.7%); after: 3/4 (75.0%)" in out
    assert "flipped: 2 (1 to correct, 1 to incorrect)" in out


def test_output_has_the_new_verdicts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path / "run.jsonl", REPORT)
    target = tmp_path / "regraded.jsonl"
    assert main([str(source), "--output", str(target), "--quiet"]) == 0
    assert "math/1" not in capsys.readouterr().out  # --quiet: totals only
    records = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [r["correct"] for r in records] == [True, False, True, True]
    assert records[0]["prediction"] == r"\frac12"
    assert records[1]["grade_reason"] == "different values: 3 vs 4"
    assert {r["grader_version"] for r in records} == {GRADER_VERSION}
    assert records[0]["problem_id"] == "math/1"  # other fields are kept


def test_output_may_overwrite_the_input(tmp_path: Path) -> None:
    source = write(tmp_path / "run.jsonl", REPORT)
    assert main([str(source), "--output", str(source), "--quiet"]) == 0
    assert len(source.read_text(encoding="utf-8").splitlines()) == len(REPORT)


def test_engine_errors_stay_incorrect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = {"problem_id": "p", "response": r"\boxed{4}", "gold": "4", "end_reason": "error", "error": "timeout"}
    assert main([str(write(tmp_path / "run.jsonl", [record]))]) == 0
    assert "correct: 0/1" in capsys.readouterr().out


def test_bad_json_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "run.jsonl", [REPORT[0], "{not json"])
    assert main([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"tir-harness regrade: {path}:2: not valid JSON")
    assert "\n" not in err


@pytest.mark.parametrize("record", [{"gold": "1"}, {"response": "x"}, ["gold", "1"]])
def test_records_without_the_needed_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str], record: object) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    assert main([str(path)]) == 2
    assert f"{path}:1:" in capsys.readouterr().err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_reachable_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["regrade", str(write(tmp_path / "run.jsonl", REPORT[:1]))]) == 0
    assert "incorrect -> correct" in capsys.readouterr().out
