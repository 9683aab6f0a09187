"""`tir-harness regrade FILE.jsonl|RUN_DIR`: grade old records again with the current grader and show what changed.

Each line is a JSON object with `gold` and either `response` (a full model response: the answer is extracted
again) or `prediction` (a bare answer). A tir-harness report line also has `correct`, `grader_version`,
`problem_id` and `sample`; records whose verdict flips are listed, then the totals. With `--output`, the
records are written again with `correct`, `prediction`, `grade_reason` and `grader_version` updated.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tir_harness.grading import GRADER_VERSION, Verdict
from tir_harness.records.jsonl import JsonlError, read_objects
from tir_harness.records.load import ReportError, trajectories_path
from tir_harness.records.verdict import grade_record
from tir_harness.run.datasets import answer_kind


class InputError(Exception):
    """A one-line message naming the file and line."""


@dataclass
class Totals:
    records: int = 0
    before: int = 0
    after: int = 0
    judged_before: int = 0
    to_correct: int = 0
    to_incorrect: int = 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tir-harness regrade", description="Re-grade a JSONL of responses or a tir-harness report."
    )
    parser.add_argument(
        "file", type=Path, help="a report folder, or a JSONL with `gold` and `response` or `prediction` per line"
    )
    parser.add_argument("--output", type=Path, help="write the re-graded records here (JSONL)")
    parser.add_argument("--dataset", help="dataset name for answer extraction when records have none (gsm8k, math)")
    parser.add_argument("--quiet", action="store_true", help="print only the totals")
    args = parser.parse_args(argv)
    try:
        args.file = trajectories_path(args.file)  # a report folder means its trajectories.jsonl
    except ReportError as exc:
        print(f"tir-harness regrade: {exc}", file=sys.stderr)
        return 2
    totals = Totals()
    out = None
    try:
        records = list(_read(args.file))
        if args.output is not None:
            out = args.output.open("w", encoding="utf-8")
        versions = sorted({str(r.get("grader_version")) for _, r in records if r.get("grader_version")})
        for number, record in records:
            verdict = grade_record(record, answer_kind(record.get("dataset") or args.dataset))
            _count(totals, record, verdict, number, args.quiet)
            if out is not None:
                record.update(
                    correct=verdict.correct,
                    prediction=verdict.prediction,
                    grade_reason=verdict.reason,
                    grader_version=GRADER_VERSION,
                )
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    except InputError as exc:
        print(f"tir-harness regrade: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # the reader of stdout has gone (`| head`): the `tir-harness` command ends quietly
    except OSError as exc:
        print(f"tir-harness regrade: {exc}", file=sys.stderr)
        return 2
    finally:
        if out is not None:
            out.close()
    _summary(totals, versions)
    if args.output is not None:
        print(f"re-graded records written to {args.output}")
    return 0


def _read(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        for number, record in read_objects(path):
            if record.get("gold") is None or (record.get("response") is None and record.get("prediction") is None):
                raise InputError(f"{path}:{number}: a record needs `gold` and `response` or `prediction`")
            yield number, record
    except JsonlError as exc:
        raise InputError(str(exc)) from None


def _count(totals: Totals, record: dict[str, Any], verdict: Verdict, number: int, quiet: bool) -> None:
    totals.records += 1
    totals.after += verdict.correct
    old = record.get("correct")
    if not isinstance(old, bool):
        return
    totals.judged_before += 1
    totals.before += old
    if old == verdict.correct:
        return
    if verdict.correct:
        totals.to_correct += 1
    else:
        totals.to_incorrect += 1
    if not quiet:
        ident = record.get("problem_id", f"line {number}")
        if record.get("sample") is not None:
            ident = f"{ident} #{record['sample']}"
        change = "incorrect -> correct" if verdict.correct else "correct -> incorrect"
        print(f"{ident}: {change} ({verdict.reason}); prediction {verdict.prediction!r}, gold {record['gold']!r}")


def _summary(t: Totals, versions: list[str]) -> None:
    def share(n: int, d: int) -> str:
        return f"{n}/{d} ({n / d:.1%})" if d else "0/0"

    was = f" (records graded by {', '.join(versions)})" if versions else ""
    print(f"{t.records} records re-graded with grader {GRADER_VERSION}{was}")
    if t.judged_before:
        print(f"correct before: {share(t.before, t.judged_before)}; after: {share(t.after, t.records)}")
        print(f"flipped: {t.to_correct + t.to_incorrect} ({t.to_correct} to correct, {t.to_incorrect} to incorrect)")
    else:
        print(f"correct: {share(t.after, t.records)} (no previous verdicts to compare)")
    if t.records > t.judged_before > 0:
        print(f"{t.records - t.judged_before} records had no previous verdict")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
