"""Grader agreement and speed on labeled answer pairs: tir-harness vs plain Math-Verify, in the same run.

    python benchmarks/perf/grading.py [FILE.jsonl ...] [--errors]

FILE: labelled pairs, e.g. a copy of the dev set (Math-Verify's and lighteval's own suites); without one, the
held-out set in this repository, `benchmarks/perf/data/holdout_cases.jsonl`. Each line: `pred`, `gold`,
`equal` (the label), optional `kind`/`gold_kind` ("extracted" for a bare answer, "response" for a full
response to extract from; default "extracted").

Math-Verify is called as users call it: `verify(parse(gold), parse(pred))`, bare answers wrapped in `$...$`,
with its signal-based timeouts disabled (this script grades in one thread and must not use SIGALRM).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tir_harness.grading import GRADER_VERSION, extract_answer, grade

REPO = Path(__file__).resolve().parents[2]


HOLDOUT = REPO / "benchmarks" / "perf" / "data" / "holdout_cases.jsonl"


@dataclass
class Score:
    name: str
    correct: int = 0
    false_pos: int = 0
    false_neg: int = 0
    ms: list[float] = field(default_factory=list)
    mistakes: list[str] = field(default_factory=list)

    def add(self, verdict: bool, label: bool, ms: float, where: str) -> None:
        self.ms.append(ms)
        if verdict == label:
            self.correct += 1
            return
        if verdict:
            self.false_pos += 1
        else:
            self.false_neg += 1
        self.mistakes.append(f"{'FP' if verdict else 'FN'} {where}")

    def line(self) -> str:
        n = len(self.ms)
        ordered = sorted(self.ms)
        p99 = ordered[min(n - 1, int(0.99 * n))] if n else 0.0
        median = statistics.median(ordered) if n else 0.0
        return (
            f"{self.name:<14} accuracy {self.correct / n:.3f} ({self.correct}/{n})  false pos {self.false_pos:>3}"
            f"  false neg {self.false_neg:>3}  median {median:7.2f} ms  p99 {p99:8.2f} ms  max {ordered[-1]:8.2f} ms"
        )


def _subset(score: Score, cases: list[dict], kept: list[dict]) -> Score:
    """The score restricted to `kept`, recomputed from the per-case record."""
    wanted = {c["_where"] for c in kept}
    sub = Score(score.name)
    wrong = {m.split(" ", 1)[1]: m.split(" ", 1)[0] for m in score.mistakes}
    for case, ms in zip(cases, score.ms, strict=False):
        if case["_where"] not in wanted:
            continue
        label = bool(case["equal"])
        verdict = (not label) if case["_where"] in wrong else label
        sub.add(verdict, label, ms, case["_where"])
    return sub


def load(path: Path) -> list[dict]:
    cases = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                case = json.loads(line)
            except json.JSONDecodeError as exc:
                sys.exit(f"{path}:{number}: invalid JSON: {exc.msg}")
            for name in ("pred", "gold", "equal"):
                if name not in case:
                    sys.exit(f"{path}:{number}: missing field {name!r}")
            case["_where"] = f"{path.name}:{number}"
            cases.append(case)
    return cases


def tir_verdict(case: dict) -> bool:
    gold = case["gold"]
    if case.get("gold_kind", "extracted") == "response":
        gold = extract_answer(gold) or gold
    return grade(case["pred"], gold, extracted=case.get("kind", "extracted") == "extracted").correct


MV_TIMEOUT_S = 10.0


def _math_verify_case(case: dict) -> tuple[bool, float]:
    """Runs in a worker process: Math-Verify has no safe in-thread timeout, so the parent enforces one."""
    import logging

    from math_verify import parse, verify

    logging.disable(logging.WARNING)  # it warns on every call that its own timeout is disabled

    def wrap(text: str, kind: str) -> str:
        return text if kind == "response" or "$" in text else f"${text}$"

    start = time.perf_counter()
    gold = parse(wrap(case["gold"], case.get("gold_kind", "extracted")), parsing_timeout=None)
    pred = parse(wrap(case["pred"], case.get("kind", "extracted")), parsing_timeout=None)
    verdict = bool(verify(gold, pred, timeout_seconds=None))
    return verdict, (time.perf_counter() - start) * 1000


def measure_math_verify(cases: list[dict]) -> Score | None:
    try:
        import math_verify  # noqa: F401
        from pebble import ProcessPool
    except ImportError as exc:
        print(f"  (Math-Verify baseline skipped: {exc})")
        return None
    score = Score("math-verify")
    timeouts = 0
    with ProcessPool(max_workers=1) as pool:
        pool.schedule(_math_verify_case, args=(cases[0],)).result()  # warm the worker's imports
        for case in cases:
            future = pool.schedule(_math_verify_case, args=(case,), timeout=MV_TIMEOUT_S)
            try:
                verdict, ms = future.result()
            except TimeoutError:
                verdict, ms = False, MV_TIMEOUT_S * 1000
                timeouts += 1
            except Exception:
                verdict, ms = False, 0.0
            score.add(verdict, bool(case["equal"]), ms, case["_where"])
    if timeouts:
        score.name = "math-verify*"
        print(f"  (* Math-Verify exceeded {MV_TIMEOUT_S:.0f} s on {timeouts} case(s), counted as not equal)")
    return score


def measure(name: str, fn: Callable[[dict], bool], cases: list[dict]) -> Score:
    score = Score(name)
    for case in cases:
        start = time.perf_counter()
        try:
            verdict = fn(case)
        except Exception:  # a crash on a case counts as "not equal", as it would in a run
            verdict = False
        score.add(verdict, bool(case["equal"]), (time.perf_counter() - start) * 1000, case["_where"])
    return score


# Inputs that would hang or crash a naive grader; graded from several threads at once.
PATHOLOGICAL = [
    (r"10^{10^{10}}", r"10^{10000000000}"),
    (r"10^{10^{10^{10}}}", "1"),
    ("1000000!", "1000001!/1000001"),
    ("(" * 400 + "1" + ")" * 400, "1"),
    (r"2^{2^{2^{2^{2}}}}", r"2^{65536}"),
    (r"\sum_{k=1}^{10^{9}} k", "500000000500000000"),
    (r"\sin(10^{10^{5}})", "0"),
    (r"(x+1)^{100000}", r"x^{100000}+1"),
    ("9" * 5000, "9" * 4999),
    (r"\boxed{" * 3000, "1"),
    ("+".join(["x"] * 3000), "3000x"),
    (r"\frac{1}{2006!}", r"\frac{1}{2004!}"),
]


def stress(threads: int = 4) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tir_harness.grading import DEFAULT_CONFIG

    def one(i: int) -> list[tuple[float, str]]:
        out = []
        for pred, gold in PATHOLOGICAL:
            start = time.perf_counter()
            verdict = grade(pred, gold, extracted=i % 2 == 0)
            out.append(((time.perf_counter() - start) * 1000, verdict.reason))
        return out

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = [r for rs in pool.map(one, range(threads)) for r in rs]
    wall = time.perf_counter() - start
    worst = max(ms for ms, _ in results)
    timeouts = sum(reason == "timeout" for _, reason in results)
    errors = sum(reason.startswith("grader error") for _, reason in results)
    print(
        f"pathological inputs ({len(PATHOLOGICAL)} x {threads} threads): worst {worst:.1f} ms, wall {wall:.2f} s, "
        f"{timeouts} timeouts, {errors} grader errors; documented bound {DEFAULT_CONFIG.timeout_s:.1f} s per case"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help=f"labeled JSONL (default: {HOLDOUT.relative_to(REPO)})")
    parser.add_argument("--errors", action="store_true", help="list the cases each grader gets wrong")
    parser.add_argument("--no-stress", action="store_true", help="skip the pathological-input check")
    args = parser.parse_args(argv)
    files = args.files or [HOLDOUT]
    for path in files:
        if not path.is_file():
            print(f"grading benchmark: no such file: {path}", file=sys.stderr)
            return 2
        cases = load(path)
        for case in cases[:5]:  # warm caches and imports outside the measurement
            tir_verdict(case)
        scores = [measure("tir-harness", tir_verdict, cases)]
        mv = measure_math_verify(cases)
        if mv is not None:
            scores.append(mv)
        print(f"{path} ({len(cases)} cases, {sum(bool(c['equal']) for c in cases)} equal), grader {GRADER_VERSION}")
        for score in scores:
            print("  " + score.line())
        if len(scores) == 2:
            ours, theirs = (statistics.median(s.ms) for s in scores)
            print(f"  median time ratio tir-harness / math-verify: {ours / theirs:.2f}")
        flagged = [c for c in cases if c.get("conflict")]
        if flagged:
            kept = [c for c in cases if not c.get("conflict")]
            print(f"  without the {len(flagged)} cases whose label conflicts with the issue or another suite:")
            for score in scores:
                print("    " + _subset(score, cases, kept).line())
        if args.errors:
            for score in scores:
                for mistake in score.mistakes:
                    print(f"    {score.name}: {mistake}")
    if not args.no_stress:
        stress()
    return 0


if __name__ == "__main__":
    sys.exit(main())
