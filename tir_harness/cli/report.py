"""`tir-harness report RUN`: rebuild a run's summary files, plots and report.html from its trajectories.jsonl."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from tir_harness.analysis.compare import compare
from tir_harness.analysis.render import format_comparison, format_terminal
from tir_harness.analysis.report import (
    REPORT_HTML,
    SUMMARY_JSON,
    SUMMARY_MD,
    read_manifest,
    write_report_html,
    write_summary,
)
from tir_harness.cli.args import Parser, UsageError
from tir_harness.records.load import ReportError, load_records
from tir_harness.util.text import one_line


def _parser() -> Parser:
    parser = Parser(prog="tir-harness report", description="Rebuild summaries, plots and report.html of a run.")
    parser.add_argument("run", metavar="RUN", help="a run directory or a trajectories.jsonl")
    parser.add_argument("--baseline", help="compare with this run directory or trajectories.jsonl")
    parser.add_argument("--out", help="write here instead of the run's directory")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--html", action="store_true", help="write report.html only (summary files and plots stay as they are)"
    )
    output.add_argument("--no-html", action="store_true", help="skip report.html")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`tir-harness report RUN [--baseline B] [--out DIR] [--no-plots] [--html | --no-html]`: 0 ok, 2 bad input."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        records = load_records(args.run)
        if not records:
            raise ReportError(f"{args.run}: no records")
        baseline = load_records(args.baseline) if args.baseline else None
        run = Path(args.run)
        run_dir = run if run.is_dir() else run.parent
        out = Path(args.out) if args.out else run_dir
        if out.exists() and not out.is_dir():
            raise ReportError(f"{out}: not a directory")
        manifest = read_manifest(run_dir)  # the run's settings, wherever the report goes
        try:
            if args.html:
                page, summary = write_report_html(out, records, baseline, manifest=manifest)
                files = [page.name]
            else:
                html = not args.no_html
                summary = write_summary(out, records, baseline, plots=not args.no_plots, html=html, manifest=manifest)
                files = [SUMMARY_JSON, SUMMARY_MD, *summary["plots"], *([REPORT_HTML] if html else [])]
        except OSError as exc:
            raise ReportError(f"{out}: cannot write the report ({exc.strerror or exc})") from None
    except (ReportError, UsageError) as exc:
        print(f"tir-harness report: error: {one_line(exc)}", file=sys.stderr)
        return 2
    print("\n".join(format_terminal(summary)))
    if "comparison" in summary:
        print("\n".join(format_comparison(compare(records, baseline or []))))
    print(f"wrote {', '.join(str(out / f) for f in files)}")
    return 0
