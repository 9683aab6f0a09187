"""`tir-harness reproduce [ALIAS] [--dataset D] [--run DIR]`: the published checkpoints, their published
accuracies with sources, the pytest command that evaluates one as its authors did, and a finished run's
verdict against the published number."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tir_harness.analysis.reproduction import ReproductionError, compare_with_published
from tir_harness.cli.args import Parser, UsageError
from tir_harness.run.published import (
    Checkpoint,
    PublishedError,
    checkpoints,
    expected_settings,
    get_checkpoint,
    pytest_command,
)
from tir_harness.util.text import one_line


def _parser() -> Parser:
    parser = Parser(
        prog="tir-harness reproduce",
        description="List the published checkpoints and their numbers; print how to reproduce one; compare a run.",
    )
    parser.add_argument("alias", nargs="?", help="a published checkpoint's alias (none: list them all)")
    parser.add_argument("--dataset", help="the dataset to reproduce (default: the first one published)")
    parser.add_argument("--run", type=Path, help="a finished run's folder (its summary.json) to compare")
    return parser


def _numbers(checkpoint: Checkpoint) -> list[str]:
    lines = []
    for entry in checkpoint.published:
        shown = f"{entry.accuracy:.1f}" if entry.accuracy is not None else "-"
        note = f"; {entry.note}" if entry.note else ""
        lines.append(f"    {entry.dataset:<8} {shown:>5}  {entry.source}{note}")
    return lines


def _listing() -> list[str]:
    lines = ["published checkpoints (accuracy in %, greedy; '-': no published number found):"]
    for checkpoint in checkpoints():
        lines.append(f"  {checkpoint.alias}  ({checkpoint.hub_id}, {checkpoint.family})")
        lines += _numbers(checkpoint)
    return lines


def _summary(run: Path) -> dict:
    path = run / "summary.json" if run.is_dir() else run
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReproductionError(f"{path}: not found (give a finished run's folder)") from None
    except (OSError, ValueError) as exc:
        raise ReproductionError(f"{path}: {one_line(exc)}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """0 listed / printed / reproduced; 1 the run is below or above the published number; 2 bad input."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        if args.alias is None:
            if args.dataset or args.run:
                raise UsageError("--dataset and --run need an ALIAS")
            print("\n".join(_listing()))
            return 0
        checkpoint = get_checkpoint(args.alias)
        dataset = args.dataset or checkpoint.published[0].dataset
        number = checkpoint.number(dataset)
        lines = [f"{checkpoint.alias}: {checkpoint.hub_id}", *_numbers(checkpoint), "", "reference settings:",
                 f"  {pytest_command(checkpoint, dataset)}"]  # fmt: skip
        if args.run is None:
            print("\n".join(lines))
            return 0
        if number.accuracy is None:
            raise ReproductionError(f"{checkpoint.alias} on {dataset}: no published number ({number.source})")
        comparison = compare_with_published(
            dataset, float(number.accuracy), number.source, _summary(args.run), expected_settings(checkpoint)
        )
    except (UsageError, PublishedError, ReproductionError) as exc:
        print(f"tir-harness reproduce: error: {one_line(exc)}", file=sys.stderr)
        return 2
    c = comparison
    lo, hi = c.difference_interval
    lines += [
        "",
        f"run {args.run}: {dataset} accuracy {c.accuracy:.1f}% on {c.n} problems, "
        f"95% interval [{c.interval[0]:.1f}, {c.interval[1]:.1f}]",
        f"published {c.published:.1f}% ({c.source})",
        f"difference {c.difference:+.1f} points, 95% interval [{lo:+.1f}, {hi:+.1f}]",
        *(f"setting differs: {m}" for m in c.mismatches),
        f"verdict: {c.verdict}",
    ]
    print("\n".join(lines))
    return 0 if c.verdict == "reproduced" else 1
