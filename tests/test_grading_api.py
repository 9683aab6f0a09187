"""The public surface other code calls: grade/Verdict, Answer (used in benchmark assertions), explain."""

from __future__ import annotations

import dataclasses

import pytest

import tir_harness.grading as grading
from tir_harness.grading import GRADER_VERSION, Answer, Verdict, equivalent, explain, extract_answer, grade


def test_public_names() -> None:
    for name in ("grade", "extract_answer", "equivalent", "Verdict", "Answer", "GRADER_VERSION", "explain"):
        assert name in grading.__all__
    assert isinstance(GRADER_VERSION, str) and GRADER_VERSION


def test_verdict_is_frozen_and_carries_prediction_and_reason() -> None:
    verdict = grade(r"so $\boxed{3}$", "4")
    assert isinstance(verdict, Verdict)
    assert (verdict.correct, verdict.prediction) == (False, "3")
    assert verdict.reason == "different values: 3 vs 4"
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.correct = True  # type: ignore[misc]


def test_extracted_flag_skips_extraction() -> None:
    # As a response, "3 + 4" would be read for its last number; as a bare answer it is 7.
    assert grade("3 + 4", "7", extracted=True).correct
    assert not grade("3 + 4", "7").correct


def test_answer_equals_gold_strings_by_equivalence() -> None:
    assert Answer(r"\frac{1}{2}") == "0.5"
    assert "0.5" == Answer(r"\frac{1}{2}")
    assert Answer("1,000") == Answer("1000")
    assert Answer("3") != "4"
    assert not (Answer(None) == "4")
    assert Answer(None) != Answer(None)
    assert Answer("3").__eq__(3) is NotImplemented


def test_answer_is_unhashable_and_shows_its_text() -> None:
    with pytest.raises(TypeError):
        hash(Answer("3"))
    assert repr(Answer("3")) == "Answer('3')"
    assert repr(Answer(None)) == "Answer(None)"


def test_explain_shows_prediction_gold_and_reason() -> None:
    lines = explain(Answer("3"), "4")
    text = "\n".join(lines)
    assert "'3'" in text and "'4'" in text
    assert "different values: 3 vs 4" in text
    assert explain("4", Answer("3")) == lines  # either side of the assertion


def test_explain_without_prediction_says_no_answer() -> None:
    text = "\n".join(explain(Answer(None), "4"))
    assert "none extracted" in text and "no answer" in text


def test_equivalent_and_extract_answer_signatures() -> None:
    assert equivalent("2", "2.0") is True
    assert extract_answer("#### 5", answer_kind="number") == "5"
    assert extract_answer("The answer is 6", answer_kind="expression") == "6"
