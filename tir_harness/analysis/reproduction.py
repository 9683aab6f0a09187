"""A finished run against a published accuracy (`tir-harness reproduce ALIAS --run DIR`).

A run reproduces a number when the number lies inside the 95% Wilson interval of the run's accuracy on that
dataset: the published figure is one greedy run on the same test set, so what is left between the two is the
run's own uncertainty (nondeterministic kernels, batch order, the engine's version) plus any difference in
setup, which the verdict is there to reveal.  "below"/"above": the whole interval lies below/above the number.
The published numbers themselves live in run/published.json (run/published.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tir_harness.analysis.stats import wilson_interval

__all__ = ["Comparison", "ReproductionError", "compare_with_published"]


class ReproductionError(ValueError):
    """The run cannot be compared (no problems of the dataset); the message is one line."""


@dataclass(frozen=True)
class Comparison:
    dataset: str
    published: float  # percent
    source: str
    n: int  # problems of the dataset in the run
    accuracy: float  # percent
    interval: tuple[float, float]  # the run's 95% Wilson interval, percent
    verdict: str  # reproduced, below, above
    mismatches: tuple[str, ...]  # settings of the run that differ from the authors'

    @property
    def difference(self) -> float:
        return self.accuracy - self.published

    @property
    def difference_interval(self) -> tuple[float, float]:
        return (self.interval[0] - self.published, self.interval[1] - self.published)


def compare_with_published(
    dataset: str, published: float, source: str, summary: Mapping[str, Any], expected: Mapping[str, Any]
) -> Comparison:
    """A finished run's summary (summary.json) against the accuracy (percent) published for `dataset`;
    `expected` holds the authors' settings (run/published.py `expected_settings`) the run is checked against."""
    group = summary.get("accuracy", {}).get("by_dataset", {}).get(dataset)
    if not group or not group.get("n"):
        ran = ", ".join(summary.get("accuracy", {}).get("by_dataset", {})) or "none"
        raise ReproductionError(f"the run has no {dataset} problems (datasets in it: {ran})")
    n, score = int(group["n"]), float(group["accuracy"])
    lo, hi = wilson_interval(min(score * n, n), n)
    verdict = "below" if 100 * hi < published else "above" if 100 * lo > published else "reproduced"
    return Comparison(
        dataset, published, source, n, 100 * score, (100 * lo, 100 * hi), verdict,
        _mismatches(expected, summary.get("run", {})),
    )  # fmt: skip


def _mismatches(expected: Mapping[str, Any], run: Mapping[str, Any]) -> tuple[str, ...]:
    found = []
    models = run.get("models") or []
    if models and not any(m in expected.get("models", ()) for m in models):
        found.append(f"model {', '.join(map(str, models))} (published: {' or '.join(expected.get('models', ()))})")
    for key, name in (("prompt_formats", "prompt_format"), ("prompt_types", "prompt_type")):
        values = run.get(key) or []
        if values and name in expected and values != [expected[name]]:
            found.append(f"{name.replace('_', ' ')} {', '.join(map(str, values))} (published: {expected[name]})")
    calls = run.get("max_tool_calls") or []
    if calls and "max_tool_calls" in expected and calls != [expected["max_tool_calls"]]:
        found.append(f"max tool calls {', '.join(map(str, calls))} (published: {expected['max_tool_calls']})")
    for sampling in run.get("sampling") or []:
        for name in ("temperature", "top_p", "max_tokens"):
            if isinstance(sampling, dict) and name in expected and sampling.get(name) is not None:
                if float(sampling[name]) != float(expected[name]):
                    found.append(f"{name} {sampling[name]} (published: {expected[name]})")
    return tuple(dict.fromkeys(found))
