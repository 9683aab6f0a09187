"""A record's verdict: the one place that grades a stored trajectory (and knows an engine error has none)."""

from __future__ import annotations

from typing import Any

from tir_harness.grading import GRADER_VERSION, Verdict, grade
from tir_harness.grading.reference import reference_grade
from tir_harness.records.trajectory import END_ERROR, conversation_text


def grade_record(record: dict[str, Any], dataset: str | None = None) -> Verdict:
    """The current grader's verdict on a record: its response, or (for records without one) its prediction."""
    if record.get("end_reason") == END_ERROR:  # nothing was generated: there is no response to grade
        return Verdict(False, None, f"engine error: {record.get('error')}")
    gold = str(record["gold"])
    if record.get("response") is not None:
        return grade(str(record["response"]), gold, dataset=record.get("dataset") or dataset)
    return grade(str(record["prediction"]), gold, extracted=True)


def reference_verdict(record: dict[str, Any]) -> tuple[bool, str | None]:
    """(correct, prediction) by the reference implementation's own grader, on the conversation it would have
    written (docs/fidelity.md); shown beside the harness's verdict, never deciding pass/fail."""
    if record.get("end_reason") == END_ERROR or not (record.get("final_prompt") or record.get("prompt")):
        return False, None
    return reference_grade(conversation_text(record), str(record["gold"]))


def regraded(record: dict[str, Any], dataset: str | None = None) -> dict[str, Any]:
    """The record with its grading fields recomputed by the current graders (the trajectory is untouched)."""
    verdict = grade_record(record, dataset)
    reference_correct, reference_prediction = reference_verdict(record)
    return {
        **record,
        "prediction": verdict.prediction,
        "correct": verdict.correct,
        "grade_reason": verdict.reason,
        "grader_version": GRADER_VERSION,
        "reference_correct": reference_correct,
        "reference_prediction": reference_prediction,
    }
