"""Hooks tir-harness adds to pytest (registered through `pytest_addhooks`)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec(firstresult=True)
def pytest_tir_make_engine(config: pytest.Config, model: str | None) -> Any:
    """Return an `Engine` to use instead of vLLM or the --server-url client (e.g. a custom backend or a
    scripted engine in tests), or None to let tir-harness start its own."""


@pytest.hookspec
def pytest_tir_register(config: pytest.Config) -> None:
    """Register datasets, prompt formats, prompt types or observation styles (`tir_harness.register_dataset`,
    `register_prompt_format`, `register_prompt_type`, `register_observation_style`) for this session.

    Called once in `pytest_configure`, after conftest.py files are loaded and before the harness's options are
    checked, so option values may name what a conftest registers here; what is registered here is forgotten
    when the session ends (docs/extending.md)."""
