"""`tir-harness annotate` and `tir-harness pairs`: stored trajectories as training data."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tir_harness.records.annotate import (
    OBSERVATION_ROLES,
    PAIR_COLUMNS,
    AnnotateError,
    annotate,
    iter_records,
    pairs,
    row_columns,
)
from tir_harness.records.store import StoreError
from tir_harness.util.arguments import positive_int
from tir_harness.util.files import atomic_open


def _parser(command: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"tir-harness {command}", description=description)
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="RUN",
        help="run directory, trajectories.jsonl, or result store (folder or .sqlite3); several are merged",
    )
    parser.add_argument("--output", "-o", required=True, help="output file (JSONL; '-' for stdout) or folder")
    parser.add_argument("--format", choices=("jsonl", "datasets"), default="jsonl", help="default: jsonl")
    parser.add_argument("--model", help="only trajectories of this model (the record's 'model')")
    parser.add_argument("--observation-role", choices=OBSERVATION_ROLES, default="tool")
    return parser


def annotate_main(argv: Sequence[str] | None = None) -> int:
    parser = _parser("annotate", "Export trajectories as chat conversations for training.")
    parser.add_argument("--correct-only", action="store_true", help="only correctly answered trajectories")
    parser.add_argument("--drop-exec-errors", action="store_true", help="drop trajectories whose code failed")
    parser.add_argument("--drop-no-answer", action="store_true", help="drop trajectories without an answer")
    args = parser.parse_args(argv)
    rows = annotate(
        iter_records(args.sources, model=args.model),
        correct_only=args.correct_only,
        drop_exec_errors=args.drop_exec_errors,
        drop_no_answer=args.drop_no_answer,
        observation_role=args.observation_role,
    )
    return _run("annotate", rows, args, "trajectories", row_columns())


def pairs_main(argv: Sequence[str] | None = None) -> int:
    parser = _parser("pairs", "Build preference pairs (a correct and an incorrect trajectory per problem).")
    parser.add_argument("--max-pairs-per-problem", type=positive_int, default=1, metavar="N", help="default: 1")
    args = parser.parse_args(argv)
    rows = pairs(
        iter_records(args.sources, model=args.model),
        max_pairs_per_problem=args.max_pairs_per_problem,
        observation_role=args.observation_role,
    )
    return _run("pairs", rows, args, "pairs", PAIR_COLUMNS)


def _run(
    command: str, rows: Iterator[dict[str, Any]], args: argparse.Namespace, what: str, types: dict[str, str]
) -> int:
    try:
        count = (
            _write_dataset(list(rows), args.output, types) if args.format == "datasets" else _write(rows, args.output)
        )
    except (AnnotateError, StoreError) as exc:
        print(f"tir-harness {command}: error: {exc}", file=sys.stderr)
        return 1
    if args.output != "-":
        print(f"tir-harness {command}: wrote {count} {what} to {args.output}", file=sys.stderr)
    return 0


def _write(rows: Iterator[dict[str, Any]], output: str) -> int:
    if output == "-":
        count = 0
        try:
            for row in rows:
                sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader (`| head`) has gone: stop quietly, and keep Python from complaining at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return count
    # Written beside the target and renamed at the end: a failed export never leaves half a file.
    target = Path(output)
    if target.is_dir():
        raise AnnotateError(f"{target}: is a directory; give a file name for JSONL output")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        count = 0
        with atomic_open(target) as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
    except OSError as exc:
        raise AnnotateError(f"{target}: cannot write ({exc.strerror})") from exc
    return count


def _write_dataset(rows: list[dict[str, Any]], output: str, types: dict[str, str]) -> int:
    try:
        import datasets
    except ImportError as exc:
        raise AnnotateError("--format datasets needs the 'datasets' package (pip install 'tir-harness[hub]')") from exc
    if output == "-":
        raise AnnotateError("--format datasets writes a folder; '-' (stdout) is for JSONL")
    if rows and set(rows[0]) != set(types):  # the column list has fallen behind the row builder
        raise RuntimeError(f"dataset columns {sorted(types)} differ from row fields {sorted(rows[0])}")
    message = {"role": datasets.Value("string"), "content": datasets.Value("string")}
    features = datasets.Features(
        {name: [message] if kind == "messages" else datasets.Value(kind) for name, kind in types.items()}
    )
    try:
        columns = {name: [row[name] for row in rows] for name in types}
        dataset = datasets.Dataset.from_dict(columns, features=features)
        bars = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # the command prints its own one-line summary
        try:
            # One shard at least: `datasets` saves an empty dataset as zero shards, then cannot load it.
            dataset.save_to_disk(output, num_shards=None if rows else 1)
        finally:
            if bars:
                datasets.enable_progress_bars()
    except (ValueError, TypeError, OSError) as exc:
        raise AnnotateError(f"{output}: cannot save the dataset ({exc})") from exc
    return len(rows)
