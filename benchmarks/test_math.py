"""MATH test: competition problems, 7 subjects, levels 1-5 (5,000)."""

import pytest


@pytest.mark.tir_dataset("math", split="test")
def test_math(problem, solve):
    assert solve(problem).answer == problem.answer
