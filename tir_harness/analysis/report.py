"""A run's report files: summary.json, summary.md and the plots, written from its records."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tir_harness.analysis.compare import compare
from tir_harness.analysis.plots import write_plots
from tir_harness.analysis.render import format_markdown
from tir_harness.analysis.summary import Record, summarize
from tir_harness.util.files import write_atomic

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"


def write_summary(
    run_dir: str | Path,
    records: Iterable[Record],
    baseline: Iterable[Record] | None = None,
    *,
    plots: bool = True,
) -> dict[str, Any]:
    """Write summary.json, summary.md and the plots into `run_dir`; return the summary.

    With `baseline` records the summary also holds the comparison and a comparison plot is drawn.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    records = list(records)
    summary = summarize(records)
    comparison = compare(records, baseline) if baseline is not None else None
    if comparison is not None:
        summary["comparison"] = comparison.to_dict()
    written = [p.name for p in write_plots(run_dir, summary, comparison)] if plots else []
    summary["plots"] = written
    write_atomic(run_dir / SUMMARY_JSON, json.dumps(summary, indent=2, sort_keys=False) + "\n")
    write_atomic(run_dir / SUMMARY_MD, format_markdown(summary, comparison, written))
    return summary
