"""MATH-500: the PRM800K subset of MATH test (500)."""

import pytest


@pytest.mark.tir_dataset("math500", split="test")
def test_math500(problem, solve):
    assert solve(problem).answer == problem.answer
