"""OlympiadBench: open-ended English maths competition problems, text only (675)."""

import pytest


@pytest.mark.tir_dataset("olympiadbench", split="test")
def test_olympiadbench(problem, solve):
    assert solve(problem).answer == problem.answer
