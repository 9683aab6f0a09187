"""Reasoning models' outputs: the answer after </think>, an unfinished think block, cues between boxes."""

from __future__ import annotations

import pytest

from tir_harness.grading import grade
from tir_harness.grading.extraction import extract_answer
from tir_harness.grading.thinking import NOT_FINISHED, split_thinking
from tir_harness.records.verdict import regraded


def test_a_box_while_thinking_is_not_the_answer():
    # The case: `<think>...\boxed{3}...</think> ... \boxed{5}` (read as the list "3, 5" before).
    verdict = grade("<think>so \\boxed{3} maybe</think> The answer is \\boxed{5}.", "5")
    assert verdict.correct and verdict.prediction == "5"
    assert not grade("<think>\\boxed{3}</think> \\boxed{5}", "3").correct


def test_a_lone_closing_tag_ends_the_thinking_the_prompt_opened():
    # Chat templates of R1 distills end the prompt with "<think>\n": the response holds only the closing tag.
    assert extract_answer("so \\boxed{3} ... wait.\n</think>\n\nThe answer is \\boxed{5}.") == "5"


def test_an_unclosed_think_block_is_no_answer_said_so():
    verdict = grade("<think>Let me see, \\boxed{3} perhaps, and the answer is 3", "3")
    assert (verdict.correct, verdict.prediction, verdict.reason) == (False, None, NOT_FINISHED)
    assert NOT_FINISHED == "no answer (thinking not finished)"
    assert grade("no box, no number", "3").reason == "no answer"  # without thinking: as before


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("\\boxed{3} and the final answer \\boxed{5}", "5"),  # "final": the later box replaces the earlier
        ("We get \\boxed{3}\n### Response\n\\boxed{5}", "5"),  # a header starts the answer part
        ("\\boxed{1} and \\boxed{2}", "1, 2"),  # no cue: a list, as before
        ("The roots are $\\boxed{-1}$, $\\boxed{2}$", "-1, 2"),
    ],
)
def test_cues_of_which_box_is_final(response, expected):
    assert extract_answer(response) == expected


@pytest.mark.parametrize("response", ["So $f$ is $odd$", "The function is $odd$.", "Hence the sum is $even$"])
def test_a_bare_word_in_dollars_is_an_answer(response):
    word = response.rstrip(".").rsplit("$", 2)[1]
    assert grade(response, f"\\text{{{word}}}").correct
    assert not grade(response, "\\text{prime}").correct


def test_a_variable_name_is_still_not_an_answer():
    assert extract_answer("Let $x$ be the number. Then $n$") is None
    assert extract_answer("so the value is 12 for $f$") == "12"


def test_the_record_keeps_the_thinking_and_counts_both_parts():
    thinking, answer = "Try 3. No: 5.", " The answer is \\boxed{5}."
    record = {"response": f"<think>{thinking}</think>{answer}", "gold": "5", "dataset": "aime24", "end_reason": "stop"}
    graded = regraded(record)
    assert graded["correct"] and graded["response"] == record["response"]
    assert (graded["thinking_chars"], graded["answer_chars"]) == (len(thinking), len(answer))
    unfinished = regraded({**record, "response": f"<think>{thinking}"})
    assert unfinished["grade_reason"] == NOT_FINISHED and unfinished["answer_chars"] is None
    assert unfinished["thinking_chars"] == len(thinking)
    plain = regraded({**record, "response": "\\boxed{5}"})
    assert "thinking_chars" not in plain and "answer_chars" not in plain


def test_split_thinking_takes_the_last_closing_tag():
    thought = split_thinking("<think>a</think>b</think>c")
    assert (thought.thinking, thought.answer, thought.finished) == ("a</think>b", "c", True)
    assert split_thinking("plain").thinking is None
