"""Finding the final answer in a response: boxes, answer phrases, GSM8K markers, the last-number fallback."""

from __future__ import annotations

import pytest

from tir_harness.grading import extract_answer, grade


@pytest.mark.parametrize(
    "response, answer",
    [
        (r"The area is $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
        (r"first \boxed{3}. Then we recheck and get \boxed{5}.", "5"),  # several boxes: the last one
        (r"so \boxed{3}, then \boxed{5}", "5"),  # a correction is not a list
        (r"\boxed{1} and \boxed{2}", "1, 2"),  # a few connecting words: one list
        (r"$x = \boxed{-2} \quad \text{and} \quad \boxed{1}$", "-2, 1"),
        (r"\fbox{7}", "7"),
        (r"hence \boxed 5", "5"),
        (r"\\boxed{12}", "12"),  # doubly escaped backslashes
        (r"\boxed{\text{(C)}}", r"\text{(C)}"),
        ("The answer is 42.", "42"),
        ("Final Answer: The final answer is $x=3$. I hope it is correct.", "x=3"),
        ("Final Answer: The largest $n$ is 34.", "34"),
        (r"so \boxed{255} ... Final Answer: The final answer is $10,455$. I hope it is correct.", "10,455"),
        ("答案：每份应该是 (\\frac{2}{5}) 吨。", r"\frac{2}{5}"),
        ("Réponse: Janeth aura encore 220 $ à payer d'ici 12 mois.", "220"),
        ("Step 1: 16 - 3 - 4 = 9\n#### 18", "18"),
        ("#### 1,234", "1,234"),
        ("we get 3 apples, then 7 more", "7"),  # the last number, as a fallback
        ("the ordered pair $(x, y)$ that solves the system is $(7, 6)$.", "(7, 6)"),
        ("so the probability is 2/3. <|im_start|>user", "2/3"),
        ("the total is 1,000.99 dollars", "1,000.99"),
        ("$1$ and $2$ and $3$", "1, 2, 3"),
        ("no digits here", None),
        ("", None),
        ("AZYUK2A", None),  # a digit inside a word is not a number
    ],
)
def test_extract_answer(response: str, answer: str | None) -> None:
    assert extract_answer(response) == answer


def test_gsm8k_fallback_takes_the_last_number_not_the_last_formula() -> None:
    response = "She pays 18 dollars, so she keeps $x$"
    assert extract_answer(response, answer_kind="number") == "18"


def test_nothing_extracted_is_not_correct_with_reason_no_answer() -> None:
    verdict = grade("I could not solve this problem.", "5")
    assert (verdict.correct, verdict.prediction, verdict.reason) == (False, None, "no answer")


@pytest.mark.parametrize(
    "response, gold, correct",
    [
        ("thinking about it I think the correct answer is C", "C", True),
        ("It's not A because it doesn't make sense, therefore I think it's B", "B", True),
        ("The answer is for sure D, it can't be A or B", "D", True),
        ("D. it can't be A or B", "D", True),
        ("B。不是 A", "B", True),
        (r"The answer is \boxed{\text{(C)}}", "C", True),
        ("The answer is A", "(D) Alina", False),
        (r"so $\boxed{A + B}$", "A + B", True),  # an expression in capitals is not a choice
    ],
)
def test_multiple_choice_letters(response: str, gold: str, correct: bool) -> None:
    assert grade(response, gold).correct is correct


def test_grade_extracts_then_compares() -> None:
    verdict = grade(r"Thus the answer is $\boxed{\dfrac{3}{4}}$.", "0.75")
    assert verdict.correct
    assert verdict.prediction == r"\dfrac{3}{4}"


def test_bare_answer_that_is_prose_is_read_as_a_short_response() -> None:
    assert grade("Soucis : 2,74 $ a..", "2.74", extracted=True).correct


@pytest.mark.parametrize(
    "response, answer",
    [
        ("<answer>12</answer> Then maybe 13 is also fine.", "12"),  # the tag, not the last number
        ("Reasoning 4 and 9.\n<answer>\n\\frac{1}{2}\n</answer>", "\\frac{1}{2}"),
        ("<answer>The answer is $7$.</answer> 8", "7"),  # its own phrase inside the tag
        ("<answer>x</answer> first, then <ANSWER>$y+1$</ANSWER>", "y+1"),  # the last tag
        ("<answer>\\boxed{3}</answer> but \\boxed{5}", "5"),  # a box outside still wins
    ],
)
def test_answer_tags(response: str, answer: str) -> None:
    assert extract_answer(response) == answer


# Closing steps of released ToRA-70B GSM8K responses (microsoft/ToRA src/outputs, MIT; tests/data/reference/):
# no box, the tool's output is the answer, and the closing prose holds other numbers.
TORA_OUTPUT_LAST = [
    ("```output\n5\n```\n5 cars drove through the traffic jam in the first 15 minutes.", "5"),  # test idx 98
    ("```output\n3.0\n```\nThree trucks will be needed to transport 80 flagstones in one trip.", "3"),  # idx 288
]


@pytest.mark.parametrize(("response", "gold"), TORA_OUTPUT_LAST)
def test_a_tool_use_response_without_a_box_is_answered_by_its_closing_output(response: str, gold: str) -> None:
    verdict = grade("```python\nprint(x)\n```\n" + response, gold, answer_kind="number")
    assert verdict.correct, verdict


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        ("```python\nprint(1)\n```\n```output\n7\n```\nso we try again\n```python\nprint(8)\n```", "8"),  # code after
        ("```output\nNameError: name 'x' is not defined\n```\nWe get 12 in the end", "12"),  # not an answer
        ("```output\n[1, 2]\n3\n```\nThat is 7 days.", "3"),  # the block's last line
        ("```output\n4\n```\nThe answer is 6.", "6"),  # an answer phrase still wins
    ],
)
def test_closing_output_rule_boundaries(response: str, answer: str) -> None:
    assert extract_answer(response, answer_kind="number") == answer


@pytest.mark.parametrize("text", ["$", "\\quad", "\\text{}", ".", "=", "~", "\\,", "\\$", "x^{}", "nan"])
def test_identical_strings_are_always_equal(text: str) -> None:
    assert grade(text, text, extracted=True).correct
