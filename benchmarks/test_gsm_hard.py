"""GSM-Hard: GSM8K with larger numbers (1,319)."""

import pytest


@pytest.mark.tir_dataset("gsm_hard", split="test")
def test_gsm_hard(problem, solve):
    assert solve(problem).answer == problem.answer
