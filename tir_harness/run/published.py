"""Published checkpoints and the accuracies their authors published (run/published.json), for `tir-harness
reproduce` (its comparison with a finished run: analysis/reproduction.py).

Each checkpoint names its `--model` alias (engines/models.py ALIASES holds the same alias, hub id, prompt format
and type: tests/test_reproduce.py), the authors' evaluation settings as harness options, and per dataset the
published accuracy in percent with where it was read; a gap (no number found) has `accuracy: null` and a source
saying why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = [
    "Checkpoint",
    "Published",
    "PublishedError",
    "checkpoints",
    "expected_settings",
    "get_checkpoint",
    "pytest_command",
]

FILE = "published.json"


class PublishedError(ValueError):
    """An unknown alias or dataset; the message is one line."""


@dataclass(frozen=True)
class Published:
    dataset: str
    accuracy: float | None  # percent; None: not found (a gap)
    source: str
    note: str = ""


@dataclass(frozen=True)
class Checkpoint:
    alias: str
    hub_id: str
    prompt_format: str
    prompt_type: str
    family: str
    settings: tuple[tuple[str, float | int], ...]  # option name (without --, `_` for `-`) -> value
    published: tuple[Published, ...]

    def number(self, dataset: str) -> Published:
        for entry in self.published:
            if entry.dataset == dataset:
                return entry
        known = ", ".join(p.dataset for p in self.published)
        raise PublishedError(f"{self.alias}: no published number for dataset {dataset!r}; published: {known}")


@lru_cache(maxsize=1)
def checkpoints() -> tuple[Checkpoint, ...]:
    data = json.loads((resources.files("tir_harness.run") / FILE).read_text("utf-8"))
    return tuple(
        Checkpoint(
            c["alias"], c["hub_id"], c["prompt_format"], c["prompt_type"], c["family"],
            tuple(c["settings"].items()),
            tuple(Published(d, p["accuracy"], p["source"], p.get("note", "")) for d, p in c["published"].items()),
        )
        for c in data["checkpoints"]
    )  # fmt: skip


def get_checkpoint(alias: str) -> Checkpoint:
    for checkpoint in checkpoints():
        if checkpoint.alias == alias.lower():
            return checkpoint
    raise PublishedError(f"unknown alias {alias!r}; known: {', '.join(c.alias for c in checkpoints())}")


def pytest_command(checkpoint: Checkpoint, dataset: str) -> str:
    """The pytest command that runs `dataset` as the authors evaluated the checkpoint."""
    options = [f"--model {checkpoint.alias}", f"--prompt-format {checkpoint.prompt_format}",
               f"--prompt-type {checkpoint.prompt_type}"]  # fmt: skip
    options += [f"--{name.replace('_', '-')} {value}" for name, value in checkpoint.settings]
    return f"pytest benchmarks/test_{dataset}.py {' '.join(options)}"


def expected_settings(checkpoint: Checkpoint) -> dict[str, Any]:
    """What a run of the checkpoint should show in its summary's `run` block (analysis/reproduction.py)."""
    return {"models": (checkpoint.alias, checkpoint.hub_id), "prompt_format": checkpoint.prompt_format,
            "prompt_type": checkpoint.prompt_type, **dict(checkpoint.settings)}  # fmt: skip
