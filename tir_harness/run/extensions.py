"""What a run can be extended with: the registries of engines, datasets, prompt formats, prompt types and
observation styles, and the public functions that add to them (re-exported by `tir_harness`).

Each kind's registry lives with the module that owns the concept (engines/registry.py, run/datasets.py,
run/prompts.py, sandbox/observations.py); this module only gathers them, so that the plugin can list and check
names of every kind without reaching below the run layer.  How to add an entry: docs/extending.md.
"""

from __future__ import annotations

from tir_harness.engines.registry import ENGINES
from tir_harness.run.datasets import DATASETS, Dataset, register_dataset
from tir_harness.run.prompts import (
    CHAT_TEMPLATE,
    FORMATS,
    PROMPT_TYPES,
    PromptFormat,
    PromptType,
    format_names,
    register_prompt_format,
    register_prompt_type,
)
from tir_harness.sandbox.observations import STYLES, ObservationStyle
from tir_harness.sandbox.observations import register_style as register_observation_style
from tir_harness.util.registry import Registry, RegistryError

__all__ = [
    "REGISTRIES",
    "Dataset",
    "ObservationStyle",
    "PromptFormat",
    "PromptType",
    "RegistryError",
    "check",
    "names",
    "register_dataset",
    "register_observation_style",
    "register_prompt_format",
    "register_prompt_type",
    "snapshot",
]

REGISTRIES: dict[str, Registry] = {  # kind -> its registry
    "engine": ENGINES,
    "dataset": DATASETS,
    "prompt format": FORMATS,
    "prompt type": PROMPT_TYPES,
    "observation style": STYLES,
}


def names(kind: str) -> tuple[str, ...]:
    """The names an option of this kind accepts (`chat-template` is a prompt format too)."""
    return format_names() if kind == "prompt format" else REGISTRIES[kind].names()


def check(kind: str, name: str) -> None:
    """RegistryError, one line naming the known entries, unless `name` is an entry of `kind`."""
    if kind == "prompt format" and name == CHAT_TEMPLATE:
        return
    REGISTRIES[kind].get(name)


def snapshot() -> dict[str, frozenset[str]]:
    """The names registered now, per kind (to undo what a session's plugins registered, `forget`)."""
    return {kind: frozenset(registry.names()) for kind, registry in REGISTRIES.items()}


def forget(before: dict[str, frozenset[str]]) -> None:
    """Unregister what was registered since `before` (a `snapshot`)."""
    for kind, registry in REGISTRIES.items():
        for name in set(registry.names()) - before[kind]:
            registry.unregister(name)
