"""A registered dataset's benchmark test, so that `benchmarks/test_<name>.py` holds one line and no facts:

    from tir_harness.plugin.benchmark import dataset_test

    test_gsm8k = dataset_test("gsm8k")

which is the test a user would write by hand (README):

    @pytest.mark.tir_dataset("gsm8k", split="test")
    def test_gsm8k(problem, solve):
        assert solve(problem).answer == problem.answer

Its assertion is rewritten by pytest (plugin/hooks.py registers this module), so a wrong answer is explained.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tir_harness.run.datasets import get_dataset

__all__ = ["dataset_test", "file_text"]


def dataset_test(name: str, split: str = "test") -> Callable[..., None]:
    """The benchmark test of the registered dataset `name` (its problems of `split`, each graded)."""
    dataset = get_dataset(name)

    def test(problem: Any, solve: Callable[[Any], Any]) -> None:
        assert solve(problem).answer == problem.answer

    test.__name__ = test.__qualname__ = f"test_{name}"
    test.__doc__ = f"{name}: {dataset.description}."
    return pytest.mark.tir_dataset(name, split=split)(test)  # type: ignore[no-any-return]


def file_text(name: str) -> str:
    """The content of `benchmarks/test_<name>.py` (tests/test_registries.py checks every file against it)."""
    return f'from tir_harness.plugin.benchmark import dataset_test\n\ntest_{name} = dataset_test("{name}")\n'
