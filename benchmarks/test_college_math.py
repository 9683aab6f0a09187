"""CollegeMath: college algebra to differential equations (2,818; not shipped: --data-dir or the hub)."""

import pytest


@pytest.mark.tir_dataset("college_math", split="test")
def test_college_math(problem, solve):
    assert solve(problem).answer == problem.answer
