"""Hooks tir-harness adds to pytest (registered through `pytest_addhooks`)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec(firstresult=True)
def pytest_tir_make_engine(config: pytest.Config, model: str | None) -> Any:
    """Return an `Engine` instance to use instead of the one --engine names (e.g. a scripted engine in tests),
    or None to let tir-harness start that one.  A backend meant to be chosen by name registers an engine type
    instead (`tir_harness.register_engine`, docs/extending.md)."""
