"""AIME 2025 I and II: 30 problems, integer answers 0-999 (not shipped: --data-dir or the hub)."""

import pytest


@pytest.mark.tir_dataset("aime25", split="test")
def test_aime25(problem, solve):
    assert solve(problem).answer == problem.answer
