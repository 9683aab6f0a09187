"""Hooks tir-harness adds to pytest (registered through `pytest_addhooks`)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec(firstresult=True)
def pytest_tir_make_engine(config: pytest.Config, model: str | None) -> Any:
    """Return an `Engine` to use instead of vLLM or the --server-url client (e.g. a custom backend or a
    scripted engine in tests), or None to let tir-harness start its own."""
