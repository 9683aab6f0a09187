"""The record's fields defined once (records/fields.py): the schema file, the writers and the readers agree with it."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tir_harness.records import fields
from tir_harness.records.fields import CHECKED, REQUIRED, Column, Defect, Field
from tir_harness.records.trajectory import Trajectory, Turn

from .test_annotate import rec
from .test_summary import record, small_run

ROOT = Path(__file__).resolve().parents[1]


def test_the_schema_file_is_the_one_the_fields_generate() -> None:
    committed = fields.SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == fields.render_schema(), (
        "schemas/trajectory.schema.json differs from records/fields.py: run python -m tir_harness.records.fields"
    )
    jsonschema.Draft202012Validator.check_schema(json.loads(committed))


def test_every_field_is_documented() -> None:
    text = (ROOT / "docs" / "reports.md").read_text(encoding="utf-8")
    section = text.split("## The trajectory record", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(\w+)`", section))
    missing = [f.name for f in fields.FIELDS + fields.TURN_FIELDS if f.name not in named]
    assert missing == [], f"docs/reports.md's record table does not describe {missing}"


def test_a_turn_has_the_turn_fields_and_a_trajectory_gives_record_fields() -> None:
    assert {f.name for f in dataclasses.fields(Turn)} == {f.name for f in fields.TURN_FIELDS}
    names = {f.name for f in fields.FIELDS}
    assert set(Trajectory(prompt="p", turns=[Turn("x", "stop")]).to_dict()) <= names


def test_a_record_the_run_makes_has_every_required_field_and_only_defined_ones() -> None:
    from tir_harness.run.problems import Problem
    from tir_harness.run.results import RunContext, make_record

    trajectory = Trajectory(
        prompt="Q: 1+1?\n",
        turns=[Turn(text="It is \\boxed{2}.", finish_reason="stop", completion_tokens=5)],
        end_reason="answer",
        final_prompt="Q: 1+1?\n",
    )
    context = RunContext("run", "model", "plain", "tora", 4, {"timeout": 10.0})
    sampling = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 64, "seed": 0, "stop": ["```output"]}
    made = make_record(Problem("toy/test/1", "toy", "test", "1+1?", "2"), 0, trajectory, context, "a" * 64, sampling)
    required = {f.name for f in fields.FIELDS if not f.optional}
    assert required - set(made) == set()
    assert set(made) - {f.name for f in fields.FIELDS} == set()
    jsonschema.Draft202012Validator(fields.json_schema()).validate(made)


def test_unknown_settings_fail_where_the_field_is_defined() -> None:
    with pytest.raises(ValueError, match="cell 'badge' is not one of"):
        Column("x", cell="badge")
    with pytest.raises(ValueError, match="show 'never' is not one of"):
        Column("x", show="never")
    with pytest.raises(ValueError, match="a need is"):
        Field("x", {"type": "string"}, load="always")


# ------------------------------------------------------------------------------------------- the readers

WRONG_VALUES: list[Any] = [None, "", "x", -1, 0, 7, 1.5, True, [], [1], {}]


def _valid_records() -> list[dict[str, Any]]:
    return small_run() + [record("p", False, prediction=None, end_reason="error", statuses=("timeout",))]


@pytest.mark.parametrize("reader", ["load", "annotate"])
def test_a_reader_takes_every_record_the_schema_takes(reader: str) -> None:
    check = fields.checker(reader)
    assert [check(r) for r in _valid_records()] == [None] * len(_valid_records())
    if reader == "annotate":
        assert check(rec(0, 0, None)) is None  # an ungraded record exports (the schema wants a verdict)


# The keywords a reader checks (fields.py's docstring); the others (maximum, pattern) only the schema does.
READER_KEYWORDS = {"type", "minLength", "minimum", "enum", "const"}


@pytest.mark.parametrize("reader", ["load", "annotate"])
def test_a_reader_refuses_what_the_schema_refuses_for_a_type_or_a_lower_bound(reader: str) -> None:
    check, validator = fields.checker(reader), jsonschema.Draft202012Validator(fields.json_schema())
    good = _valid_records()[0]
    needed = [f for f in fields.FIELDS if getattr(f, reader)]
    assert {f.name for f in needed} >= {"problem_id", "sample"}
    for field in needed:
        for value in WRONG_VALUES:
            bad = {**good, field.name: value}
            errors = [e for e in validator.iter_errors(bad) if list(e.absolute_path)[:1] == [field.name]]
            defect = check(bad)
            refused = any(e.validator in READER_KEYWORDS for e in errors)
            assert (defect is not None) == refused, f"{reader}: {field.name}={value!r}: {defect}, {errors}"
            assert defect is None or defect.field == field.name
        if getattr(field, reader) == REQUIRED:
            defect = check({k: v for k, v in good.items() if k != field.name})
            assert defect is not None and (defect.field, defect.got) == (field.name, None)


def test_what_a_reader_checks_of_a_turn() -> None:
    check = fields.checker("annotate")
    base = rec(0, 0, True)
    assert check({**base, "turns": [{"observation": "5"}]}) == Defect(
        "turns", "a list of objects whose 'text' is a string", "nothing in item 1"
    )
    defect = check({**base, "turns": [{"text": "a"}, {"text": "b", "observation": 5}]})
    assert defect is not None and (defect.field, defect.got) == ("turns", "5 in item 2")
    assert fields.checker("load")({**base, "turns": [{"observation": 5}]}) is None  # a report reads no turn field


def test_an_added_field_is_checked_by_the_readers_that_need_it(monkeypatch: pytest.MonkeyPatch) -> None:
    added = Field("judge_score", {"type": "number", "minimum": 0}, load=REQUIRED, annotate=CHECKED, optional=True)
    monkeypatch.setattr(fields, "FIELDS", (*fields.FIELDS, added))
    good = record("p", True)
    assert fields.checker("load")(good) == Defect("judge_score", "a number >= 0")
    assert fields.checker("annotate")(good) is None
    assert fields.checker("annotate")({**good, "judge_score": -0.5}) == Defect("judge_score", "a number >= 0", "-0.5")
    schema = fields.json_schema()
    assert schema["properties"]["judge_score"] == {"type": "number", "minimum": 0}
    assert "judge_score" not in schema["required"]
