"""Summaries, plots, the record schema and `tir-harness report` on synthetic runs with known answers."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tir_harness.analysis.render import format_terminal, live_line
from tir_harness.analysis.report import write_summary
from tir_harness.analysis.summary import summarize
from tir_harness.cli.report import main
from tir_harness.records.trajectory import Trajectory, Turn

Z = 1.959963984540054
SCHEMA = Path(__file__).resolve().parents[1] / "tir_harness" / "records" / "schemas" / "trajectory.schema.json"


def score_bounds(x: float, n: int) -> tuple[float, float]:
    """The 95% Wilson interval by bisection on its definition, |x/n - p| = z sqrt(p (1 - p) / n)."""
    phat = x / n

    def outside(p: float) -> bool:
        return abs(phat - p) > Z * math.sqrt(p * (1 - p) / n)

    def root(inside: float, out: float) -> float:
        for _ in range(200):
            mid = (inside + out) / 2
            inside, out = (inside, mid) if outside(mid) else (mid, out)
        return (inside + out) / 2

    lower = 0.0 if x == 0 else root(phat, 0.0)
    upper = 1.0 if x == n else root(phat, 1.0)
    return lower, upper


def record(
    pid: str,
    correct: bool,
    *,
    sample: int = 0,
    subject: str | None = "algebra",
    level: int | None = 1,
    dataset: str = "math",
    prediction: str | None = "",
    statuses: tuple[str, ...] = (),
    end_reason: str = "answer",
    seconds: float = 1.0,
) -> dict[str, Any]:
    """A complete record (schema version 1); one turn per executor status, then a final answer turn."""
    turns = [
        {
            "text": "```python\nprint(1)\n```",
            "finish_reason": "stop",
            "stop_reason": "```output",
            "code": "print(1)",
            "observation": "1",
            "exec_status": status,
            "prompt_tokens": 100,
            "completion_tokens": 10,
            "cached_tokens": 0,
            "gen_seconds": 0.1,
            "exec_seconds": 0.01,
        }
        for status in statuses
    ]
    turns.append(
        {
            "text": "\\boxed{2}",
            "finish_reason": "stop",
            "stop_reason": None,
            "code": None,
            "observation": None,
            "exec_status": None,
            "prompt_tokens": 100,
            "completion_tokens": 10,
            "cached_tokens": None,
            "gen_seconds": 0.1,
            "exec_seconds": 0.0,
        }
    )
    return {
        "schema_version": 1,
        "run_id": "syn-run",
        "test_id": f"benchmarks/test_math.py::test_math[{pid}]",
        "problem_id": pid,
        "dataset": dataset,
        "split": "test",
        "subject": subject,
        "level": level,
        "sample": sample,
        "question": f"question {pid}",
        "gold": "2",
        "prediction": ("2" if correct else "3") if prediction == "" else prediction,
        "correct": correct,
        "grade_reason": "",
        "grader_version": "1",
        "model": "syn-model",
        "prompt_format": "plain",
        "prompt_type": "tora",
        "sampling": {"temperature": 0.0, "top_p": 1.0, "max_tokens": 1024, "seed": 0, "stop": ["```output"]},
        "max_tool_calls": 4,
        "executor": {"timeout": 10.0},
        "prompt": "prompt",
        "final_prompt": "prompt",
        "turns": turns,
        "response": "response",
        "end_reason": end_reason,
        "error": "engine died" if end_reason == "error" else None,
        "tool_calls": len(statuses),
        "prompt_tokens": 100 * len(turns),
        "completion_tokens": 10 * len(turns),
        "seconds": seconds,
        "key": "ab" * 32,
        "cached": False,
    }


def small_run() -> list[dict[str, Any]]:
    """10 problems: algebra L1 3/4, algebra L2 1/2, geometry L1 0/4; 4 correct in all."""
    outcomes = [
        ("algebra", 1, [True, True, True, False]),
        ("algebra", 2, [True, False]),
        ("geometry", 1, [False, False, False, False]),
    ]
    records = []
    for subject, level, results in outcomes:
        for i, ok in enumerate(results):
            records.append(record(f"math/test/{subject}/{level}{i}", ok, subject=subject, level=level))
    return records


def assert_group(group: dict[str, Any], correct: float, n: int, records: int | None = None) -> None:
    assert group["n"] == n
    assert group["records"] == (n if records is None else records)
    assert group["accuracy"] == pytest.approx(correct / n)
    assert group["ci"] == pytest.approx(score_bounds(correct, n), abs=1e-9)


# ------------------------------------------------------------------------------------------- numbers


def test_accuracy_by_every_grouping() -> None:
    acc = summarize(small_run())["accuracy"]
    assert_group(acc["overall"], 4, 10)
    assert acc["overall"]["correct"] == 4
    assert_group(acc["by_dataset"]["math"], 4, 10)
    assert set(acc["by_subject"]) == {"algebra", "geometry"}
    assert_group(acc["by_subject"]["algebra"], 4, 6)
    assert_group(acc["by_subject"]["geometry"], 0, 4)
    assert list(acc["by_level"]) == ["1", "2"]
    assert_group(acc["by_level"]["1"], 3, 8)
    assert_group(acc["by_level"]["2"], 1, 2)
    assert_group(acc["by_subject_level"]["algebra"]["1"], 3, 4)
    assert_group(acc["by_subject_level"]["algebra"]["2"], 1, 2)
    assert_group(acc["by_subject_level"]["geometry"]["1"], 0, 4)


def test_problems_without_subject_or_level_count_overall_only() -> None:
    records = [record(f"gsm8k/test/{i}", i < 3, subject=None, level=None, dataset="gsm8k") for i in range(5)]
    records.append(record("math/test/algebra/1", True))
    acc = summarize(records)["accuracy"]
    assert_group(acc["overall"], 4, 6)
    assert_group(acc["by_dataset"]["gsm8k"], 3, 5)
    assert_group(acc["by_subject"]["algebra"], 1, 1)
    assert_group(acc["by_level"]["1"], 1, 1)
    lines = format_terminal(summarize(records))
    assert [line.split()[:2] for line in lines if line.strip().startswith(("gsm8k", "math"))] == [
        ["gsm8k", "5"],
        ["math", "1"],
    ]
    assert any(line.split()[:3] == ["(all", "problems)", "6"] for line in lines)


def test_several_samples_pass_and_maj_at_k() -> None:
    # Problem A: answers 2 (right), 5, 6, 2 (right); B: 7, 7, 8, 9 (all wrong); C: all right.
    plan = {
        "A": [("2", True), ("5", False), ("6", False), ("2", True)],
        "B": [("7", False), ("7", False), ("8", False), ("9", False)],
        "C": [("2", True)] * 4,
    }
    records = [
        record(pid, ok, sample=s, prediction=answer)
        for pid, votes in plan.items()
        for s, (answer, ok) in enumerate(votes)
    ]
    summary = summarize(records)
    # Accuracy: the mean of per-problem fractions (0.5, 0, 1), with n = 3 problems.
    assert_group(summary["accuracy"]["overall"], 1.5, 3, records=12)
    assert summary["samples"] == {"min": 4, "max": 4}
    # pass@k = 1 - C(4-c, k) / C(4, k) per problem, averaged: A has c=2, B c=0, C c=4.
    expected_pass = {"1": (0.5 + 0 + 1) / 3, "2": ((1 - 1 / 6) + 0 + 1) / 3, "4": (1 + 0 + 1) / 3}
    assert {k: v["value"] for k, v in summary["pass_at_k"].items()} == pytest.approx(expected_pass)
    # maj@k over disjoint blocks of k samples.  A: k=1 -> 1,0,0,1; k=2 -> (2 vs 5: tie) 0.5, (6 vs 2) 0.5;
    # k=4 -> 2 wins 2:1:1.  B: 0.  C: 1.
    expected_maj = {"1": (0.5 + 0 + 1) / 3, "2": (0.5 + 0 + 1) / 3, "4": (1 + 0 + 1) / 3}
    assert {k: v["value"] for k, v in summary["maj_at_k"].items()} == pytest.approx(expected_maj)
    assert all(v["n"] == 3 for v in summary["pass_at_k"].values())


def test_one_sample_has_no_pass_at_k() -> None:
    summary = summarize(small_run())
    assert summary["pass_at_k"] == {} and summary["maj_at_k"] == {}


def test_how_trajectories_ended_and_cost() -> None:
    records = [
        record("p1", True, statuses=("ok", "error"), seconds=2.0),
        record("p2", False, statuses=("timeout", "timeout", "memory", "ok"), end_reason="max_tool_calls"),
        record("p3", False, prediction=None, end_reason="no_code", seconds=3.0),
        record("p4", False, prediction=None, end_reason="error", seconds=0.0),
        record("p5", False, statuses=("output_limit",), end_reason="length"),
    ]
    s = summarize(records)
    assert s["end_reasons"] == {"answer": 1, "error": 1, "length": 1, "max_tool_calls": 1, "no_code": 1}
    assert s["exec_status"] == {"error": 1, "memory": 1, "ok": 2, "output_limit": 1, "timeout": 2}
    assert s["counts"] == {
        "no_answer": 1,  # p3; p4's engine error is counted once, under engine_errors
        "max_tool_calls": 1,
        "length": 1,
        "engine_errors": 1,
        "exec_timeouts": 2,
        "exec_errors": 1,
        "exec_limits": 2,  # memory and output_limit
        "records_with_exec_timeout": 1,
        "records_with_exec_failure": 3,  # p1 (error), p2, p5
        "cached": 0,
    }
    # Tool calls 2, 4, 0, 0, 1; turns are one more each.
    assert s["tool_calls"]["mean"] == pytest.approx(7 / 5)
    assert s["tool_calls"]["median"] == 1 and s["tool_calls"]["max"] == 4 and s["tool_calls"]["used"] == 3
    assert s["tool_calls"]["histogram"] == {
        "0": {"records": 2, "correct": 0},
        "1": {"records": 1, "correct": 0},
        "2": {"records": 1, "correct": 1},
        "4": {"records": 1, "correct": 0},
    }
    assert s["turns"]["mean"] == pytest.approx(12 / 5)
    assert s["cost"]["seconds"]["mean"] == pytest.approx((2 + 1 + 3 + 0 + 1) / 5)
    assert s["cost"]["prompt_tokens"]["total"] == 100 * 12
    assert s["cost"]["completion_tokens"]["mean"] == pytest.approx(10 * 12 / 5)


def test_a_rerun_record_replaces_the_first() -> None:
    records = [record("p1", False), record("p2", True), record("p1", True)]
    s = summarize(records)
    assert s["records"] == 2 and s["duplicates"] == 1
    assert_group(s["accuracy"]["overall"], 2, 2)


def test_empty_run() -> None:
    s = summarize([])
    assert s["problems"] == 0 and s["accuracy"]["overall"]["ci"] == [0.0, 1.0]
    assert format_terminal(s)[0].startswith("tir-harness:")


# ---------------------------------------------------------------------------------------- terminal


def test_format_terminal_shows_the_table() -> None:
    lines = format_terminal(summarize(small_run()))
    lo, hi = score_bounds(4, 10)
    assert lines[0] == "tir-harness: syn-model run syn-run: 10 problems, 1 sample each"
    assert lines[1] == f"accuracy  40.0% [{100 * lo:.1f}, {100 * hi:.1f}]  4/10"
    algebra = next(line for line in lines if line.strip().startswith("algebra"))
    lo, hi = score_bounds(4, 6)
    assert algebra.split() == ["algebra", "6", "66.7%", f"[{100 * lo:.1f},", f"{100 * hi:.1f}]", "75%", "50%"]
    geometry = next(line for line in lines if line.strip().startswith("geometry"))
    assert geometry.split()[-2:] == ["0%", "-"]
    assert any(line.startswith("ends     no answer 0, tool-call limit 0, length 0") for line in lines)


def test_engine_errors_are_not_counted_as_no_answer_and_the_tool_maximum_is_the_observed_one() -> None:
    records = [
        record("p1", False, prediction=None, end_reason="error"),
        record("p2", False, prediction=None, end_reason="error"),
        record("p3", False, prediction=None, end_reason="no_code"),
    ]
    lines = format_terminal(summarize(records))
    ends = next(line for line in lines if line.startswith("ends"))
    assert "no answer 1," in ends and "engine errors 2;" in ends
    tools = next(line for line in lines if line.startswith("tools"))
    assert "(observed max 0, limit 4)" in tools


HOSTILE_TEXT = "red\x1b[31m \x1b]0;title\x07 back\r\b rev\u202eesrever\u2066 nel\x85 csi\x9b2J"


def test_terminal_and_markdown_text_from_data_cannot_act_on_a_terminal() -> None:
    # A model name from a server's /v1/models, subjects and problem ids from a data file: shown as escapes.
    records = [
        {**record(f"p{i}\x1b[2J", i % 2 == 0, subject=f"alg{HOSTILE_TEXT}"), "model": f"m{HOSTILE_TEXT}"}
        for i in range(4)
    ]
    summary = summarize(records)
    baseline = [{**r, "correct": not r["correct"]} for r in records]
    from tir_harness.analysis.compare import compare
    from tir_harness.analysis.render import format_comparison, format_markdown

    shown = "\n".join(format_terminal(summary) + format_comparison(compare(records, baseline)))
    shown += format_markdown(summary)
    for acting in ("\x1b", "\x07", "\r", "\b", "\u202e", "\u2066", "\x85", "\x9b"):
        assert acting not in shown
    assert "m" + HOSTILE_TEXT.encode("unicode_escape").decode() in shown  # visible, as escapes
    assert "p0\\x1b[2J" in shown  # a flipped problem's id
    assert records[0]["model"] == f"m{HOSTILE_TEXT}"  # the records keep their text


def test_live_line() -> None:
    lo, hi = score_bounds(7, 12)
    assert live_line(12, 7, 200) == f"tir-harness: 12/200 done, accuracy 58.3% [{100 * lo:.1f}, {100 * hi:.1f}] (7/12)"
    assert live_line(0, 0, 10) == "tir-harness: 0/10 done"
    assert live_line(3, 3, None).startswith("tir-harness: 3 done, accuracy 100.0%")
    with pytest.raises(ValueError):
        live_line(3, 4, 10)


# ------------------------------------------------------------------------------------------- files


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_write_summary_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    records = small_run()
    baseline = [dict(r, correct=not r["correct"], run_id="old") for r in records[:6]]
    summary = write_summary(tmp_path, records, baseline=baseline)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["accuracy"]["overall"]["correct"] == 4
    assert on_disk["comparison"]["n"] == 6 and on_disk["comparison"]["gained"] == 4
    markdown = (tmp_path / "summary.md").read_text()
    assert "| overall | 10 | 40.0% |" in markdown
    assert "| geometry | 4 | 0.0% |" in markdown
    assert "![comparison](comparison.png)" in markdown
    assert summary["plots"] == ["accuracy.png", "tool_calls.png", "comparison.png"]
    from matplotlib.image import imread

    for name in summary["plots"]:
        width, height = png_size(tmp_path / name)
        assert width > 300 and height > 200
        assert imread(tmp_path / name).shape[:2] == (height, width)


def test_plots_without_levels(tmp_path: Path) -> None:
    records = [record(f"gsm8k/test/{i}", i % 2 == 0, subject=None, level=None, dataset="gsm8k") for i in range(6)]
    summary = write_summary(tmp_path, records)
    assert summary["plots"] == ["accuracy.png", "tool_calls.png"]
    png_size(tmp_path / "accuracy.png")


# ------------------------------------------------------------------------------------------ schema


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_accepts_the_records(validator: jsonschema.Draft202012Validator) -> None:
    for r in small_run() + [record("p", False, prediction=None, end_reason="error", statuses=("timeout",))]:
        validator.validate(r)


def test_schema_accepts_a_trajectory_to_dict(validator: jsonschema.Draft202012Validator) -> None:
    # The trajectory part comes from the lead's Trajectory.to_dict(): the schema must describe it.
    trajectory = Trajectory(
        prompt="p",
        turns=[Turn(text="x", finish_reason="stop", stop_reason="```output", code="print(1)", exec_status="ok")],
        end_reason="answer",
        seconds=0.5,
        final_prompt="p x",
    )
    data = {**record("p", True), **trajectory.to_dict()}
    validator.validate(data)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"level": "3"}, "level"),
        ({"level": 6}, "level"),
        ({"sample": -1}, "sample"),
        ({"correct": "yes"}, "correct"),
        ({"end_reason": "bored"}, "end_reason"),
        ({"schema_version": 2}, "schema_version"),
        ({"key": "not-a-hash"}, "key"),
    ],
)
def test_schema_rejects_bad_records(
    validator: jsonschema.Draft202012Validator, change: dict[str, Any], path: str
) -> None:
    errors = list(validator.iter_errors({**record("p", True), **change}))
    assert [list(e.path) for e in errors] == [[path]]


def test_schema_requires_the_matching_key(validator: jsonschema.Draft202012Validator) -> None:
    broken = record("p", True)
    del broken["problem_id"]
    assert not validator.is_valid(broken)


# --------------------------------------------------------------------------------------------- CLI


def write_run(directory: Path, records: list[dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    file = directory / "trajectories.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in records))
    return file


def test_cli_report_rebuilds_a_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path / "run", small_run())
    assert main([str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "accuracy  40.0%" in out
    for name in ("summary.json", "summary.md", "accuracy.png", "tool_calls.png"):
        assert (tmp_path / "run" / name).is_file()


def test_cli_report_on_a_file_with_baseline_and_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = write_run(tmp_path / "run", small_run())
    baseline = write_run(tmp_path / "old", [dict(r, run_id="old") for r in small_run()])
    out_dir = tmp_path / "elsewhere"
    assert main([str(file), "--baseline", str(baseline), "--out", str(out_dir), "--no-plots"]) == 0
    assert "difference +0.0 points" in capsys.readouterr().out
    assert json.loads((out_dir / "summary.json").read_text())["comparison"]["n"] == 10
    assert not (out_dir / "accuracy.png").exists()


def test_cli_report_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = write_run(tmp_path / "run", small_run()[:2])
    file.write_text(file.read_text() + '{"problem_id": "x", "sample": 0, "correct": 1}\n')
    empty = write_run(tmp_path / "empty", [])
    cases = [
        ([str(file)], rf"{file}:3: correct must be true or false"),
        ([str(tmp_path / "missing")], "no such file or directory"),
        ([str(empty)], "no records"),
        ([str(tmp_path / "run"), "--bogus"], "unrecognized arguments: --bogus"),
    ]
    for argv, text in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("tir-harness report: error: ") and text in err, err
