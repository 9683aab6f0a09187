"""AMC 12 2023 A and B (40; not shipped: --data-dir or the hub)."""

import pytest


@pytest.mark.tir_dataset("amc23", split="test")
def test_amc23(problem, solve):
    assert solve(problem).answer == problem.answer
