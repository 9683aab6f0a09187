"""SVAMP: simple word problems with varied structure (1,000)."""

import pytest


@pytest.mark.tir_dataset("svamp", split="test")
def test_svamp(problem, solve):
    assert solve(problem).answer == problem.answer
