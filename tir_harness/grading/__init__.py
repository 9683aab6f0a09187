"""The grader: find the final answer in a response and decide whether it equals the gold answer.

    from tir_harness.grading import grade
    v = grade(response, gold)               # extract, then compare
    v = grade(pred, gold, extracted=True)   # pred is already a bare final answer
    v.correct, v.prediction, v.reason

Rules: docs/grading.md. Bump GRADER_VERSION whenever a verdict may change; reports store it so that
`tir-harness regrade` can re-grade old runs.

Layer `grading`: answer extraction (the one brace matcher lives in `boxed`), parsing, equivalence and the
verdict.  It may import util only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tir_harness.grading.answer import Answer, explain
from tir_harness.grading.config import DEFAULT_CONFIG, GraderConfig
from tir_harness.grading.equivalence import compare_texts, equivalent, parse_answer
from tir_harness.grading.extraction import ANSWER_KINDS, NUMBER, extract_answer, extract_choice
from tir_harness.grading.normalize import clean
from tir_harness.grading.thinking import NOT_FINISHED, split_thinking
from tir_harness.grading.timeouts import GradingTimeout, deadline

__all__ = [
    "ANSWER_KINDS",
    "DEFAULT_CONFIG",
    "GRADER_VERSION",
    "Answer",
    "GraderConfig",
    "Verdict",
    "equivalent",
    "explain",
    "extract_answer",
    "grade",
]

GRADER_VERSION = "1.3"  # 1.3: answers after </think>, "final"/header cues between boxes, `$odd$`

# A multiple-choice gold: `C`, `(C)`, `C.`, `(C) Cecile`, `C. Cecile`, `C Cecile` (not `A + B`).
_CHOICE_GOLD = re.compile(r"\(?[A-J]\)?[.:]?|\([A-J]\)\s*\S.*|[A-J][.:)]\s*\S.*|[A-J]\s+[A-Za-z].*", re.DOTALL)


@dataclass(frozen=True)
class Verdict:
    correct: bool
    prediction: str | None
    reason: str


def grade(
    response: str,
    gold: str,
    extracted: bool = False,
    *,
    answer_kind: str = "expression",
    config: GraderConfig = DEFAULT_CONFIG,
) -> Verdict:
    """Grade one response (or, with `extracted=True`, one bare answer) against the gold answer.

    `answer_kind` (ANSWER_KINDS) is what the dataset's answers are; the grader knows no dataset names."""
    if answer_kind not in ANSWER_KINDS:  # a caller's bug, not the model's: never a silent "expression"
        raise ValueError(f"answer_kind must be one of {', '.join(ANSWER_KINDS)}, got {answer_kind!r}")
    prediction: str | None = None
    try:
        with deadline(config.timeout_s):
            prediction = _prediction(response, gold, extracted, answer_kind)
            if prediction is None:
                unfinished = not extracted and not split_thinking(response).finished
                return Verdict(False, None, NOT_FINISHED if unfinished else "no answer")
            outcome = compare_texts(prediction, gold, config)
            if extracted and not outcome.equal and len(prediction) <= config.max_answer_chars:
                retry = _reread(prediction, answer_kind, config)
                if retry is not None:
                    again = compare_texts(retry, gold, config)
                    if again.equal:
                        return Verdict(True, retry, again.reason)
            return Verdict(outcome.equal, prediction, outcome.reason)
    except GradingTimeout:
        return Verdict(False, prediction, "timeout")
    except Exception as exc:  # a grader bug must cost one verdict, never the run
        return Verdict(False, prediction, f"grader error: {type(exc).__name__}: {exc}"[:200])


def _reread(prediction: str, answer_kind: str, config: GraderConfig) -> str | None:
    """A "bare answer" that is prose ("réponse est 105", "Soucis : 2,74 $") read as a short response:
    by its explicit markers (box, answer phrase), else by its number if it has exactly one."""
    if parse_answer(clean(prediction), config) is not None:
        return None
    marked = extract_answer(prediction, answer_kind, fallback=False)
    if marked is not None:
        return marked if marked != prediction else None
    numbers = NUMBER.findall(prediction)
    return numbers[0].strip() if len(numbers) == 1 else None


def _prediction(response: str, gold: str, extracted: bool, answer_kind: str) -> str | None:
    if extracted:
        return response.strip() or None
    if _CHOICE_GOLD.fullmatch(clean(gold)):
        choice = extract_choice(response)
        if choice is not None:
            return choice
    return extract_answer(response, answer_kind)
