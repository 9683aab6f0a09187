"""`Answer`: the extracted prediction as a value that benchmark tests compare with `==`.

    assert result.answer == problem.answer      # Answer(text) == "gold string" -> equivalent(text, gold)

`explain()` gives the lines pytest shows when that assertion fails (via `pytest_assertrepr_compare`).
"""

from __future__ import annotations

from typing import Any

from tir_harness.grading.equivalence import compare_texts


class Answer:
    __slots__ = ("text",)

    def __init__(self, text: str | None) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Answer):
            other = other.text
        if other is None and self.text is None:
            return False
        if not isinstance(other, str):
            return NotImplemented
        return self.text is not None and compare_texts(self.text, other).equal

    __hash__ = None  # type: ignore[assignment]  # equality is not an equivalence relation on text

    def __repr__(self) -> str:
        return f"Answer({self.text!r})"


def explain(left: Any, right: Any) -> list[str]:
    """Lines for a failed `answer == gold`: prediction, gold and the grader's reason."""
    pred, gold = (left, right) if isinstance(left, Answer) else (right, left)
    pred_text = pred.text if isinstance(pred, Answer) else pred
    gold_text = gold.text if isinstance(gold, Answer) else gold
    if pred_text is None:
        reason = "no answer"
    elif gold_text is None:
        reason = "no gold answer"
    else:
        reason = compare_texts(str(pred_text), str(gold_text)).reason
    return [
        "answer does not match the gold answer",
        f"prediction: {pred_text!r}" if pred_text is not None else "prediction: (none extracted)",
        f"gold:       {gold_text!r}",
        f"reason:     {reason}",
    ]
