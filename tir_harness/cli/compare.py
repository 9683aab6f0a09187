"""`tir-harness compare A B`: the paired comparison of two finished runs, and the gate, outside pytest."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence

from tir_harness.analysis.compare import compare, gate
from tir_harness.analysis.render import format_comparison
from tir_harness.cli.args import Parser, UsageError
from tir_harness.records.load import ReportError, load_records
from tir_harness.util.text import one_line


def _parser() -> Parser:
    parser = Parser(
        prog="tir-harness compare",
        description="Compare run B (current) with run A (baseline) on their shared (problem_id, sample).",
    )
    parser.add_argument("baseline", metavar="A", help="baseline: a run directory or a trajectories.jsonl")
    parser.add_argument("current", metavar="B", help="current run: a run directory or a trajectories.jsonl")
    parser.add_argument("--gate", action="store_true", help="exit 1 when accuracy dropped significantly")
    parser.add_argument("--max-drop", type=float, default=0.0, help="tolerated drop, percentage points (0)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level of the gate (0.05)")
    parser.add_argument("--show", type=int, default=20, help="ids listed per flip list (20)")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`tir-harness compare A B [--gate --max-drop X --alpha Y]`: 0 ok, 1 gate failed, 2 bad input."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        if args.show < 0:
            raise ReportError(f"--show must be >= 0, got {args.show}")
        _check_gate_options(args.max_drop, args.alpha)
        baseline = load_records(args.baseline)
        current = load_records(args.current)
        for path, records in ((args.baseline, baseline), (args.current, current)):
            if not records:
                raise ReportError(f"{path}: no records")
        comparison = compare(current, baseline, current_label=str(args.current), baseline_label=str(args.baseline))
        if comparison.n == 0:
            raise ReportError(f"{args.current}: no (problem_id, sample) in common with {args.baseline}")
    except (ReportError, UsageError) as exc:
        print(f"tir-harness compare: error: {one_line(exc)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2))
    else:
        print("\n".join(format_comparison(comparison, show=args.show)))
    if not args.gate:
        return 0
    result = gate(comparison, args.max_drop, args.alpha)
    print(f"gate: {'passed' if result.passed else 'FAILED'}: {result.reason}")
    return 0 if result.passed else 1


def _check_gate_options(max_drop: float, alpha: float) -> None:
    if not math.isfinite(max_drop) or max_drop < 0:
        raise ReportError(f"--max-drop must be a number of percentage points >= 0, got {max_drop:g}")
    if not 0 <= alpha <= 1:
        raise ReportError(f"--alpha must be between 0 and 1, got {alpha:g}")
