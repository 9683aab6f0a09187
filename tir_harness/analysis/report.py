"""A run's report files: summary.json, summary.md, the plots and report.html, written from its records."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tir_harness.analysis.compare import GateResult, compare, gate
from tir_harness.analysis.html import write_html
from tir_harness.analysis.plots import write_plots
from tir_harness.analysis.render import format_markdown
from tir_harness.analysis.summary import Record, summarize
from tir_harness.util.files import write_atomic

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
MANIFEST_JSON = "manifest.json"


def read_manifest(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's manifest.json, or None when there is none or it cannot be read (the report is still useful)."""
    try:
        manifest = json.loads((Path(run_dir) / MANIFEST_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def write_summary(
    run_dir: str | Path,
    records: Iterable[Record],
    baseline: Iterable[Record] | None = None,
    *,
    plots: bool = True,
    html: bool = True,
    gate_result: GateResult | None = None,
    manifest: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write summary.json, summary.md, the plots and report.html into `run_dir`; return the summary.

    With `baseline` records the summary also holds the comparison and a comparison plot is drawn.
    `gate_result` is the verdict of an enforced gate (--gate); without one, report.html shows what the gate
    would say with its defaults.  `manifest` defaults to the run folder's manifest.json.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    records = list(records)
    baseline = list(baseline) if baseline is not None else None
    summary = summarize(records)
    comparison = compare(records, baseline) if baseline is not None else None
    if comparison is not None:
        summary["comparison"] = comparison.to_dict()
    written = [p.name for p in write_plots(run_dir, summary, comparison)] if plots else []
    summary["plots"] = written
    write_atomic(run_dir / SUMMARY_JSON, json.dumps(summary, indent=2, sort_keys=False) + "\n")
    write_atomic(run_dir / SUMMARY_MD, format_markdown(summary, comparison, written))
    if html:
        verdict = gate_result or (gate(comparison) if comparison is not None and comparison.n else None)
        write_html(
            run_dir,
            summary,
            records,
            manifest=manifest if manifest is not None else read_manifest(run_dir),
            baseline=baseline,
            gate=(verdict.passed, verdict.reason) if verdict is not None else None,
            gate_enforced=gate_result is not None,
        )
    return summary
