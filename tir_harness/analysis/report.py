"""A run's report files: summary.json, summary.md, the plots and report.html, written from its records."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tir_harness.analysis.compare import Comparison, GateResult, compare, gate
from tir_harness.analysis.html import REPORT_HTML, write_html
from tir_harness.analysis.plots import write_plots
from tir_harness.analysis.render import format_markdown
from tir_harness.analysis.summary import Record, summarize
from tir_harness.util.files import write_atomic

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
MANIFEST_JSON = "manifest.json"
__all__ = [
    "MANIFEST_JSON", "REPORT_HTML", "SUMMARY_JSON", "SUMMARY_MD", "read_manifest", "write_report_html", "write_summary",
]  # fmt: skip


def read_manifest(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's manifest.json, or None when there is none or it cannot be read (the report is still useful)."""
    try:
        manifest = json.loads((Path(run_dir) / MANIFEST_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _summary(records: list[Record], baseline: list[Record] | None) -> tuple[dict[str, Any], Comparison | None]:
    summary = summarize(records)
    comparison = compare(records, baseline) if baseline is not None else None
    if comparison is not None:
        summary["comparison"] = comparison.to_dict()
    return summary, comparison


def _write_html(
    run_dir: Path,
    summary: dict[str, Any],
    comparison: Comparison | None,
    records: list[Record],
    baseline: list[Record] | None,
    gate_result: GateResult | None,
    manifest: dict[str, Any] | None,
) -> Path:
    verdict = gate_result or (gate(comparison) if comparison is not None and comparison.n else None)
    return write_html(
        run_dir,
        summary,
        records,
        manifest=manifest if manifest is not None else read_manifest(run_dir),
        baseline=baseline,
        gate=(verdict.passed, verdict.reason) if verdict is not None else None,
        gate_enforced=gate_result is not None,
    )


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
    summary, comparison = _summary(records, baseline)
    written = [p.name for p in write_plots(run_dir, summary, comparison)] if plots else []
    summary["plots"] = written
    write_atomic(run_dir / SUMMARY_JSON, json.dumps(summary, indent=2, sort_keys=False) + "\n")
    write_atomic(run_dir / SUMMARY_MD, format_markdown(summary, comparison, written))
    if html:
        _write_html(run_dir, summary, comparison, records, baseline, gate_result, manifest)
    return summary


def write_report_html(
    run_dir: str | Path,
    records: Iterable[Record],
    baseline: Iterable[Record] | None = None,
    *,
    manifest: dict[str, Any] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Write report.html alone (summary.json, summary.md and the plots stay as they are); return it and the
    summary it shows."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    records = list(records)
    baseline = list(baseline) if baseline is not None else None
    summary, comparison = _summary(records, baseline)
    summary["plots"] = []
    return _write_html(run_dir, summary, comparison, records, baseline, None, manifest), summary
