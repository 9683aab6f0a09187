"""The packaged smoke problems: short, some need code; no download."""

import pytest


@pytest.mark.tir_dataset("smoke", split="test")
def test_smoke(problem, solve):
    assert solve(problem).answer == problem.answer
