"""GSM8K test: grade-school word problems (1,319)."""

import pytest


@pytest.mark.tir_dataset("gsm8k", split="test")
def test_gsm8k(problem, solve):
    assert solve(problem).answer == problem.answer
