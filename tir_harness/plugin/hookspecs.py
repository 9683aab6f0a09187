"""Hooks tir-harness adds to pytest (registered through `pytest_addhooks`)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec(firstresult=True)
def pytest_tir_make_engine(config: pytest.Config, model: str | None) -> Any:
    """Return an `Engine` instance to use instead of the one --engine names (e.g. a scripted engine in tests),
    or None to let tir-harness start that one.  A backend meant to be chosen by name registers an engine type
    instead (`tir_harness.register_engine`, docs/extending.md)."""


@pytest.hookspec
def pytest_tir_register(config: pytest.Config) -> None:
    """Register datasets, prompt formats, prompt types or observation styles (`tir_harness.register_dataset`,
    `register_prompt_format`, `register_prompt_type`, `register_observation_style`) for this session.

    Called once in `pytest_configure`, after conftest.py files are loaded and before the harness's options are
    checked, so option values may name what a conftest registers here; what is registered here is forgotten
    when the session ends (docs/extending.md)."""
