"""Training-data export (annotate) and preference pairs on synthetic stored runs."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from tir_harness.cli.annotate import annotate_main, pairs_main
from tir_harness.records.annotate import annotate, iter_records, pairs, to_messages
from tir_harness.records.store import ResultStore, trajectory_key

CODE_TEXT = "Let me compute.\n```python\nprint(2 + 3)\n```\n"


def code_turn(observation: str = "5", status: str = "ok", text: str = CODE_TEXT) -> dict[str, Any]:
    return {
        "text": text,
        "finish_reason": "stop",
        "stop_reason": "```output",
        "code": "print(2 + 3)",
        "observation": observation,
        "exec_status": status,
    }


def answer_turn(text: str) -> dict[str, Any]:
    return {
        "text": text,
        "finish_reason": "stop",
        "stop_reason": None,
        "code": None,
        "observation": None,
        "exec_status": None,
    }


def rec(
    problem: int,
    sample: int,
    correct: bool | None,
    *,
    seed: int = 0,
    model: str = "gemma-3-270m",
    prediction: str | None = "5",
    turns: list[dict[str, Any]] | None = None,
    end_reason: str = "answer",
    run_id: str = "run-1",
) -> dict[str, Any]:
    sampling = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 512, "seed": seed, "stop": ["```output"]}
    key = trajectory_key(
        model=model,
        model_revision=None,
        prompt_format="plain",
        prompt_type="tora-fewshot",
        prompt=f"Question: problem {problem}\nSolution:",
        sampling=sampling,
        seed=seed,
        sample=sample,
        max_tool_calls=4,
        max_turn_chars=1_000_000,
        executor={"timeout": 10},
        loop_version="1",
    )
    if turns is None:
        turns = [
            code_turn(),
            answer_turn(f"So it is \\boxed{{{prediction}}} (seed {seed}, sample {sample})."),
        ]
    return {
        "schema_version": 1,
        "run_id": run_id,
        "test_id": f"t[{problem}-{sample}]",
        "problem_id": f"toy/test/{problem}",
        "dataset": "toy",
        "split": "test",
        "subject": None,
        "level": None,
        "sample": sample,
        "question": f"What is problem {problem}?",
        "gold": "5",
        "prediction": prediction,
        "correct": correct,
        "grade_reason": "r",
        "grader_version": "1",
        "model": model,
        "prompt_format": "plain",
        "prompt_type": "tora-fewshot",
        "sampling": sampling,
        "max_tool_calls": 4,
        "executor": {"timeout": 10},
        "prompt": f"Question: problem {problem}\nSolution:",
        "turns": turns,
        "end_reason": end_reason,
        "error": None,
        "key": key,
        "cached": False,
    }


def write_run(run_dir: Path, records: list[dict[str, Any]]) -> Path:
    run_dir.mkdir(parents=True)
    with (run_dir / "trajectories.jsonl").open("w") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")
    return run_dir


def write_store(path: Path, records: list[dict[str, Any]]) -> Path:
    with ResultStore(path) as store:
        for record in records:
            store.put(record["key"], record)
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ------------------------------------------------------------------------------------------ messages


def test_to_messages_documented_format() -> None:
    record = rec(1, 0, True)
    assert to_messages(record) == [
        {"role": "user", "content": "What is problem 1?"},
        {"role": "assistant", "content": "Let me compute.\n```python\nprint(2 + 3)\n```\n"},
        {"role": "tool", "content": "```output\n5\n```"},
        {"role": "assistant", "content": "So it is \\boxed{5} (seed 0, sample 0)."},
    ]
    assert [m["role"] for m in to_messages(record, observation_role="user")] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    with pytest.raises(ValueError, match="observation_role"):
        to_messages(record, observation_role="system")


def test_to_messages_joins_assistant_turns_and_keeps_a_last_observation() -> None:
    record = rec(
        1,
        0,
        False,
        end_reason="max_tool_calls",
        prediction=None,
        turns=[answer_turn("First part, "), code_turn(observation="")],
    )
    assert to_messages(record) == [
        {"role": "user", "content": "What is problem 1?"},
        {"role": "assistant", "content": "First part, " + CODE_TEXT},
        {"role": "tool", "content": "```output\n\n```"},
    ]


# ------------------------------------------------------------------------------------------ annotate


def flag_records() -> dict[str, dict[str, Any]]:
    return {
        "clean": rec(1, 0, True),
        "wrong": rec(1, 1, False, prediction="6"),
        "wrong_exec_error": rec(
            1, 2, False, prediction="6", turns=[code_turn("NameError: x", "error"), answer_turn("\\boxed{6}")]
        ),
        "no_answer": rec(
            1,
            3,
            False,
            prediction=None,
            end_reason="max_tool_calls",
            turns=[code_turn(), code_turn(), code_turn(), code_turn()],
        ),
        "empty_box": rec(1, 4, False, prediction=" ", turns=[answer_turn("\\boxed{ }")]),
        "right_timeout": rec(2, 0, True, turns=[code_turn("Timeout", "timeout"), answer_turn("\\boxed{5}")]),
        "right_output_cut": rec(2, 1, True, turns=[code_turn("5...", "output_limit"), answer_turn("\\boxed{5}")]),
        "ungraded": rec(2, 2, None),
    }


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, set(flag_records())),
        ({"correct_only": True}, {"clean", "right_timeout", "right_output_cut"}),
        ({"drop_exec_errors": True}, set(flag_records()) - {"wrong_exec_error", "right_timeout"}),
        ({"drop_no_answer": True}, set(flag_records()) - {"no_answer", "empty_box"}),
        ({"correct_only": True, "drop_exec_errors": True}, {"clean", "right_output_cut"}),
    ],
)
def test_annotate_filters(filters: dict[str, bool], expected: set[str]) -> None:
    records = flag_records()
    by_key = {r["key"]: name for name, r in records.items()}
    assert {by_key[row["id"]] for row in annotate(records.values(), **filters)} == expected


def test_annotate_row_fields() -> None:
    records = flag_records()
    rows = {row["id"]: row for row in annotate(records.values())}
    row = rows[records["no_answer"]["key"]]
    assert row["problem_id"] == "toy/test/1" and row["sample"] == 3
    assert (row["seed"], row["temperature"], row["model"], row["gold"]) == (0, 1.0, "gemma-3-270m", "5")
    assert (row["correct"], row["prediction"], row["end_reason"]) == (False, None, "max_tool_calls")
    assert row["no_answer"] and row["max_tool_calls_reached"] and not row["exec_error"]
    assert row["tool_calls"] == 4 and len(row["messages"]) == 9
    timeout_row = rows[records["right_timeout"]["key"]]
    assert timeout_row["exec_error"] and not timeout_row["no_answer"] and timeout_row["correct"] is True
    assert timeout_row["messages"][2] == {"role": "tool", "content": "```output\nTimeout\n```"}


def test_a_field_marked_for_training_is_a_column_of_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    from tir_harness.records import fields

    judge = fields.Field("judge_score", {"type": ["number", "null"]}, optional=True, training=True)
    monkeypatch.setattr(fields, "FIELDS", (*fields.FIELDS, judge))
    records = [{**r, "judge_score": 0.5} for r in flag_records().values()]
    records[0].pop("judge_score")  # written before the field existed
    assert [row["judge_score"] for row in annotate(records)] == [None] + [0.5] * (len(records) - 1)
    out = tmp_path / "ds"
    assert (
        annotate_main([str(write_store(tmp_path / "store", records)), "--output", str(out), "--format", "datasets"])
        == 0
    )
    ds = datasets.load_from_disk(str(out))
    assert ds.features["judge_score"] == datasets.Value("float64")
    assert sorted(ds["judge_score"], key=lambda v: v is not None) == [None] + [0.5] * (len(records) - 1)


def test_a_field_annotate_requires_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tir_harness.records import fields

    judge = fields.Field("judge_score", {"type": "number"}, optional=True, annotate=fields.REQUIRED)
    monkeypatch.setattr(fields, "FIELDS", (*fields.FIELDS, judge))
    run = write_run(tmp_path / "run", [{**rec(0, 0, True), "judge_score": 1.0}, rec(0, 1, True)])
    assert annotate_main([str(run), "--output", str(tmp_path / "out.jsonl")]) == 1
    assert "trajectories.jsonl:2: record has no 'judge_score'" in one_line_error(capsys)


# ------------------------------------------------------------------------------------------- sources


def test_records_across_runs_and_stores_are_deduplicated(tmp_path: Path) -> None:
    seed0 = [rec(p, s, s == 0, seed=0) for p in range(3) for s in range(2)]
    seed1 = [rec(p, s, s == 1, seed=1) for p in range(3) for s in range(2)]
    other_model = [rec(0, 0, True, model="other")]
    # A store that accumulated both seeds, and a run dir of seed 1 whose records are also in the store.
    store = write_store(tmp_path / "store", seed0 + seed1 + other_model)
    run = write_run(tmp_path / "reports" / "run-2", seed1)
    keys = [r["key"] for r in iter_records([run, store])]
    assert len(keys) == len(set(keys)) == 13
    assert keys[:6] == [r["key"] for r in seed1]  # in source order, each key once
    assert {r["key"] for r in iter_records([store], model="other")} == {other_model[0]["key"]}
    store_file = store / "results.sqlite3"
    assert [r["key"] for r in iter_records([store_file])] == [r["key"] for r in seed0 + seed1 + other_model]


def test_first_occurrence_of_a_key_wins(tmp_path: Path) -> None:
    old = rec(0, 0, False)
    regraded = {**old, "correct": True, "grader_version": "2"}
    a = write_run(tmp_path / "a", [old])
    b = write_run(tmp_path / "b", [regraded])
    assert [r["grader_version"] for r in iter_records([b, a])] == ["2"]
    assert [r["grader_version"] for r in iter_records([a, b])] == ["1"]


# ---------------------------------------------------------------------------------------------- pairs


def pair_fixture() -> dict[str, dict[str, Any]]:
    return {
        "c_clean": rec(1, 0, True),
        "c_error": rec(1, 1, True, turns=[code_turn("Error", "error"), answer_turn("\\boxed{5} again")]),
        "w1": rec(1, 2, False, prediction="6"),
        "w2": rec(1, 3, False, prediction="7"),
        "w3": rec(1, 4, False, prediction=None),
        "only_right": rec(2, 0, True),
        "right3": rec(3, 0, True),
        "engine_error": rec(3, 1, False, end_reason="error", prediction=None),
        "ungraded": rec(3, 2, None),
        "right4": rec(4, 0, True),
        "dup_a": rec(4, 1, False, prediction="6", turns=[answer_turn("\\boxed{6}")]),
        "dup_b": rec(4, 2, False, prediction="6", turns=[answer_turn("\\boxed{6}")]),
        "model_a_right": rec(5, 0, True, model="a"),
        "model_b_wrong": rec(5, 0, False, model="b", prediction="6"),
    }


def named_pairs(records: dict[str, dict[str, Any]], **kwargs: Any) -> list[tuple[str, str]]:
    name = {r["key"]: n for n, r in records.items()}
    return [(name[p["chosen_id"]], name[p["rejected_id"]]) for p in pairs(records.values(), **kwargs)]


def test_one_pair_per_problem_prefers_a_clean_chosen() -> None:
    records = pair_fixture()
    wrong_by_key = sorted(["w1", "w2", "w3"], key=lambda n: records[n]["key"])
    dup_kept = min(["dup_a", "dup_b"], key=lambda n: records[n]["key"])
    assert named_pairs(records) == [("c_clean", wrong_by_key[0]), ("right4", dup_kept)]


def test_more_pairs_reuse_only_the_smaller_side() -> None:
    records = pair_fixture()
    wrong_by_key = sorted(["w1", "w2", "w3"], key=lambda n: records[n]["key"])
    problem1 = [
        ("c_clean", wrong_by_key[0]),
        ("c_error", wrong_by_key[1]),
        ("c_clean", wrong_by_key[2]),
    ]
    dup_kept = min(["dup_a", "dup_b"], key=lambda n: records[n]["key"])
    assert named_pairs(records, max_pairs_per_problem=2) == [*problem1[:2], ("right4", dup_kept)]
    # Never more pairs than the larger side has trajectories, however many are allowed.
    assert named_pairs(records, max_pairs_per_problem=50) == [*problem1, ("right4", dup_kept)]


def test_pairs_do_not_depend_on_input_order() -> None:
    records = pair_fixture()
    expected = list(pairs(records.values(), max_pairs_per_problem=3))
    items = list(records.values())
    random.Random(7).shuffle(items)
    assert list(pairs(items, max_pairs_per_problem=3)) == expected


def test_pair_record_format() -> None:
    records = pair_fixture()
    pair = next(pairs(records.values()))
    chosen, rejected = records["c_clean"], records[_name_of(records, pair["rejected_id"])]
    assert pair["prompt"] == [{"role": "user", "content": "What is problem 1?"}]
    assert pair["chosen"] == to_messages(chosen)[1:]
    assert pair["rejected"] == to_messages(rejected)[1:]
    assert pair["chosen"][-1]["content"].startswith("So it is \\boxed{5}")
    assert (pair["problem_id"], pair["gold"], pair["model"]) == ("toy/test/1", "5", "gemma-3-270m")
    assert pair["chosen_prediction"] == "5" and pair["rejected_prediction"] == rejected["prediction"]
    assert len(pair["id"]) == 64
    with pytest.raises(ValueError):
        list(pairs(records.values(), max_pairs_per_problem=0))


def _name_of(records: dict[str, dict[str, Any]], key: str) -> str:
    return next(n for n, r in records.items() if r["key"] == key)


# ------------------------------------------------------------------------------------------------ CLI


def test_annotate_cli_writes_jsonl_with_filters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = flag_records()
    run = write_run(tmp_path / "run", list(records.values()))
    out = tmp_path / "out" / "train.jsonl"
    assert annotate_main([str(run), "--output", str(out), "--correct-only", "--drop-exec-errors"]) == 0
    rows = read_jsonl(out)
    assert {row["id"] for row in rows} == {records["clean"]["key"], records["right_output_cut"]["key"]}
    assert rows[0]["messages"][0] == {"role": "user", "content": "What is problem 1?"}
    assert "wrote 2 trajectories" in capsys.readouterr().err

    out_all = tmp_path / "all.jsonl"
    assert annotate_main([str(run), "-o", str(out_all), "--drop-no-answer", "--observation-role", "user"]) == 0
    rows = read_jsonl(out_all)
    assert len(rows) == len(records) - 2
    assert {m["role"] for row in rows for m in row["messages"]} == {"user", "assistant"}


def test_annotate_cli_through_tir_harness_command(tmp_path: Path) -> None:
    from tir_harness.cli.main import main

    store = write_store(tmp_path / "store", list(flag_records().values()))
    out = tmp_path / "train.jsonl"
    assert main(["annotate", str(store), "--output", str(out), "--drop-no-answer"]) == 0
    assert len(read_jsonl(out)) == len(flag_records()) - 2


def test_annotate_cli_datasets_format(tmp_path: Path) -> None:
    import datasets

    records = flag_records()
    store = write_store(tmp_path / "store", list(records.values()))
    out = tmp_path / "ds"
    assert annotate_main([str(store), "--output", str(out), "--format", "datasets"]) == 0
    ds = datasets.load_from_disk(str(out))
    assert len(ds) == len(records)
    by_id = {row["id"]: row for row in ds}
    row = by_id[records["clean"]["key"]]
    assert row["messages"] == to_messages(records["clean"])
    assert row["correct"] is True and row["prediction"] == "5"
    assert by_id[records["no_answer"]["key"]]["prediction"] is None


def test_datasets_exports_keep_their_columns_when_empty(tmp_path: Path) -> None:
    import datasets

    store = write_store(tmp_path / "store", list(pair_fixture().values()))
    full, empty = tmp_path / "full", tmp_path / "empty"
    assert pairs_main([str(store), "-o", str(full), "--format", "datasets"]) == 0
    assert pairs_main([str(store), "-o", str(empty), "--format", "datasets", "--model", "nobody"]) == 0
    full_ds, empty_ds = datasets.load_from_disk(str(full)), datasets.load_from_disk(str(empty))
    assert (len(full_ds), len(empty_ds)) == (2, 0)
    assert empty_ds.features == full_ds.features
    assert len(datasets.concatenate_datasets([full_ds, empty_ds])) == 2


def test_pairs_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = pair_fixture()
    store = write_store(tmp_path / "store.sqlite3", list(records.values()))
    out = tmp_path / "pairs.jsonl"
    assert pairs_main([str(store), "--output", str(out), "--max-pairs-per-problem", "3"]) == 0
    assert [(p["problem_id"], _name_of(records, p["chosen_id"])) for p in read_jsonl(out)] == [
        ("toy/test/1", "c_clean"),
        ("toy/test/1", "c_error"),
        ("toy/test/1", "c_clean"),
        ("toy/test/4", "right4"),
    ]
    assert "wrote 4 pairs" in capsys.readouterr().err
    assert pairs_main([str(store), "--output", str(out), "--model", "a"]) == 0
    assert read_jsonl(out) == []
    with pytest.raises(SystemExit):
        pairs_main([str(store), "--output", str(out), "--max-pairs-per-problem", "0"])


# ------------------------------------------------------------------------------------------ bad input


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("line2", "message"),
    [
        ("{not json", "trajectories.jsonl:2: not valid JSON"),
        ("[1, 2]", "trajectories.jsonl:2: expected a JSON object"),
        (
            '{"key": "k", "problem_id": "p", "sample": 0, "question": "q"}',
            "trajectories.jsonl:2: record has no 'turns'",
        ),
        (
            '{"key": "k", "problem_id": "p", "sample": 0, "question": "q", "turns": [{"x": 1}]}',
            ":2: 'turns' must",
        ),
    ],
)
def test_bad_lines_are_named_by_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line2: str, message: str
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    good = json.dumps(rec(0, 0, True))
    (run / "trajectories.jsonl").write_text(f"{good}\n{line2}\n{good}\n")
    out = tmp_path / "out.jsonl"
    assert annotate_main([str(run), "--output", str(out)]) == 1
    assert message in one_line_error(capsys)
    assert not out.exists()  # no half-written output


def test_bad_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out.jsonl")
    assert annotate_main([str(tmp_path / "missing"), "--output", out]) == 1
    assert "missing: no such file or directory" in one_line_error(capsys)
    (tmp_path / "empty").mkdir()
    assert pairs_main([str(tmp_path / "empty"), "--output", out]) == 1
    assert "empty: neither a run directory" in one_line_error(capsys)
    fake = tmp_path / "fake.sqlite3"
    fake.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    assert annotate_main([str(fake), "--output", out]) == 1
    assert "fake.sqlite3" in one_line_error(capsys)


def test_an_incomplete_last_line_is_skipped_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    full = json.dumps(rec(0, 0, True))
    (run / "trajectories.jsonl").write_text(f"{full}\n{full[:40]}")  # a run killed mid-write
    out = tmp_path / "out.jsonl"
    assert annotate_main([str(run), "--output", str(out)]) == 0
    assert len(read_jsonl(out)) == 1
    assert "trajectories.jsonl:2: skipped an incomplete last line" in capsys.readouterr().err
