"""AIME 2024 I and II: 30 problems, integer answers 0-999 (not shipped: --data-dir or the hub)."""

import pytest


@pytest.mark.tir_dataset("aime24", split="test")
def test_aime24(problem, solve):
    assert solve(problem).answer == problem.answer
