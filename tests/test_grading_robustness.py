"""The grader never hangs and never raises: pathological inputs, many threads, other processes, a deadline."""

from __future__ import annotations

import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

import tir_harness.grading as grading
from tir_harness.grading import GraderConfig, Verdict, grade

# (prediction, gold, expected verdict): inputs that would hang or crash a naive sympy-based grader.
PATHOLOGICAL = [
    (r"10^{10^{10}}", r"10^{10000000000}", True),
    (r"10^{10^{10^{10}}}", "1", False),
    ("1000000!", "1000001!/1000001", True),
    ("(" * 400 + "1" + ")" * 400, "1", True),  # too deep to parse: read for its single number
    (r"\left(" * 200 + "1" + r"\right)" * 200, r"\left(" * 200 + "1" + r"\right)" * 200, True),
    (r"2^{2^{2^{2^{2}}}}", r"2^{65536}", True),
    (r"\sum_{k=1}^{10^{9}} k", "500000000500000000", False),  # too many terms to add up: not evaluated
    (r"\sin(10^{10^{5}})", "0", False),
    (r"e^{10^{30}}", "1", False),
    (r"(x+1)^{100000}", r"x^{100000}+1", False),
    (r"\binom{10^{12}}{5\cdot 10^{11}}", "1", False),
    ("9" * 5000, "9" * 5000 + "1", False),
    (r"\boxed{" * 3000, "1", False),
    ("5 " + "ab" * 40 + "!", "5", True),  # prose around one number
    ("between 2 and 3", "3", False),  # prose around two numbers is not an answer
    ("+".join(["x"] * 3000), "3000x", False),
    ("1" + "^{1" * 300 + "}" * 300, "1", False),
]


def _grade_all(extracted: bool) -> list[Verdict]:
    return [grade(pred, gold, extracted=extracted) for pred, gold, _ in PATHOLOGICAL]


def test_pathological_inputs_get_verdicts() -> None:
    verdicts = _grade_all(extracted=True)
    assert [v.correct for v in verdicts] == [want for _, _, want in PATHOLOGICAL]
    assert not any(v.reason.startswith("grader error") for v in verdicts)


def test_many_threads_at_once() -> None:
    # Each thread must give exactly the verdicts one thread alone gives (answer, verdict and reason), for
    # extracted answers and for whole responses alike.
    alone = {extracted: _grade_all(extracted) for extracted in (True, False)}
    assert [v.correct for v in alone[True]] == [want for _, _, want in PATHOLOGICAL]
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(_grade_all, extracted=i % 2 == 0) for i in range(8)]
        # A generous bound only to turn a hang into a failure; speed is measured in benchmarks/perf.
        results = [f.result(timeout=120) for f in futures]
    for i, verdicts in enumerate(results):
        assert verdicts == alone[i % 2 == 0], f"thread {i}"


def test_other_processes() -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        verdicts = list(pool.map(grade, [r"\frac{1}{2}", "x = 3", "7"], ["0.5", "3", "8"], [True] * 3, timeout=120))
    assert [v.correct for v in verdicts] == [True, True, False]


def test_an_expired_deadline_gives_reason_timeout() -> None:
    verdict = grade(r"\frac{1}{2}", "0.5", extracted=True, config=GraderConfig(timeout_s=0))
    assert (verdict.correct, verdict.reason) == (False, "timeout")
    assert verdict.prediction == r"\frac{1}{2}"


def test_deadline_is_per_call_and_per_thread() -> None:
    assert grade(r"\frac{1}{2}", "0.5", extracted=True, config=GraderConfig(timeout_s=0)).reason == "timeout"
    assert grade(r"\frac{1}{2}", "0.5", extracted=True).correct  # the expired deadline did not stick


@pytest.mark.parametrize("path", sorted(Path(grading.__file__).parent.glob("*.py")), ids=lambda p: p.name)
def test_no_signals_in_the_grader(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert not re.search(r"^\s*(import signal|from signal)|signal\.(alarm|setitimer)", source, re.MULTILINE)
