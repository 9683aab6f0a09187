"""Minerva Math: MIT OpenCourseWare problems with units and decimals (272; not shipped: --data-dir or the hub)."""

import pytest


@pytest.mark.tir_dataset("minerva_math", split="test")
def test_minerva_math(problem, solve):
    assert solve(problem).answer == problem.answer
