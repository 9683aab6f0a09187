"""ASDiv: elementary word problems (2,215; not shipped: --data-dir or the hub)."""

import pytest


@pytest.mark.tir_dataset("asdiv", split="test")
def test_asdiv(problem, solve):
    assert solve(problem).answer == problem.answer
