"""Gaokao 2023 maths, English translation (385)."""

import pytest


@pytest.mark.tir_dataset("gaokao2023en", split="test")
def test_gaokao2023en(problem, solve):
    assert solve(problem).answer == problem.answer
