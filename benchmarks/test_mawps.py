"""MAWPS: AddSub, SingleEq, SingleOp, MultiArith word problems (2,065; not shipped: --data-dir or the hub)."""

import pytest


@pytest.mark.tir_dataset("mawps", split="test")
def test_mawps(problem, solve):
    assert solve(problem).answer == problem.answer
