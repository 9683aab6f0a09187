"""A record's verdict: the one place that grades a stored trajectory (and knows an engine error has none)."""

from __future__ import annotations

from typing import Any

from tir_harness.grading import GRADER_VERSION, Verdict, grade
from tir_harness.grading.reference import REFERENCE_GRADER_VERSION, ReferenceVerdict, latex_backend
from tir_harness.grading.reference import reference_verdict as _reference_verdict
from tir_harness.grading.thinking import split_thinking
from tir_harness.records.trajectory import END_ERROR, conversation_text

# The fields `regraded` writes; a record whose versions equal the current graders' already holds them.
GRADING_FIELDS = (
    "prediction", "correct", "grade_reason", "grader_version", "reference_correct", "reference_prediction",
    "reference_grader_version", "reference_backend", "reference_timeout",
)  # fmt: skip


def grade_record(record: dict[str, Any], answer_kind: str = "expression") -> Verdict:
    """The current grader's verdict on a record: its response, or (for records without one) its prediction.
    `answer_kind` is its dataset's (grading.ANSWER_KINDS; the run layer knows which dataset has which)."""
    if record.get("end_reason") == END_ERROR:  # nothing was generated: there is no response to grade
        return Verdict(False, None, f"engine error: {record.get('error')}")
    gold = str(record["gold"])
    if record.get("response") is not None:
        return grade(str(record["response"]), gold, answer_kind=answer_kind)
    return grade(str(record["prediction"]), gold, extracted=True)


def reference_verdict(record: dict[str, Any], dataset: str | None = None) -> ReferenceVerdict:
    """The reference implementation's own verdict on the conversation it would have written
    (docs/fidelity.md); shown beside the harness's verdict, never deciding pass/fail."""
    if record.get("end_reason") == END_ERROR or not (record.get("final_prompt") or record.get("prompt")):
        return ReferenceVerdict(False, None, latex_backend())
    return _reference_verdict(
        conversation_text(record),
        str(record["gold"]),
        dataset=record.get("dataset") or dataset,
        prompt_format=record.get("prompt_format"),
    )


def is_current(record: dict[str, Any]) -> bool:
    """Whether the record was graded by the graders of this version (with the same LaTeX backend)."""
    return (
        record.get("grader_version") == GRADER_VERSION
        and record.get("reference_grader_version") == REFERENCE_GRADER_VERSION
        and record.get("reference_backend") == latex_backend()
        and all(name in record for name in GRADING_FIELDS)
    )


def regraded(record: dict[str, Any], dataset: str | None = None, *, answer_kind: str = "expression") -> dict[str, Any]:
    """The record with its grading fields recomputed by the current graders (the trajectory is untouched);
    a record already graded by them is returned as it is (a rerun from the store grades nothing again)."""
    if is_current(record):
        return record
    verdict = grade_record(record, answer_kind)
    reference = reference_verdict(record, dataset)
    return {
        **record,
        "prediction": verdict.prediction,
        "correct": verdict.correct,
        "grade_reason": verdict.reason,
        "grader_version": GRADER_VERSION,
        "reference_correct": reference.correct,
        "reference_prediction": reference.prediction,
        "reference_grader_version": REFERENCE_GRADER_VERSION,
        "reference_backend": reference.backend,
        "reference_timeout": reference.timed_out,
        **_thinking_sizes(str(record.get("response") or "")),
    }


def _thinking_sizes(response: str) -> dict[str, int | None]:
    """The sizes of a reasoning model's thinking and answer parts (nothing without a think block)."""
    thought = split_thinking(response)
    if thought.thinking is None:
        return {}
    return {"thinking_chars": len(thought.thinking), "answer_chars": len(thought.answer) if thought.finished else None}
