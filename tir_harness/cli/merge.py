"""`tir-harness merge RUN... --out DIR`: the run folders of `--shard I/N` runs joined into one run folder.

The result is the run folder one unsharded run would have left: trajectories.jsonl (every shard's records, in
shard order, under the merged folder's run id), manifest.json (shard 0's, with the shards listed under
`merged`), summary.json, summary.md, the plots, report.html and, when the shards ran with `--gate` (or
`--baseline` is given here), the gate's verdict as the exit status.

Refused with one line, before anything is written:
- a folder that is not a finished shard run (no manifest, no `--shard`, interrupted);
- shards of different N, a shard given twice, a shard missing;
- runs whose settings differ (model, prompt, sampling, limits, data, harness revision: everything but where
  and how fast they ran, `_PER_MACHINE`), or whose model differs (the engine's model identity);
- runs whose problems are not the shares of one selection (`run/shards.py`'s rule, checked on their records'
  test ids): shards run with different -k, -m or data.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tir_harness.analysis.compare import GateResult, compare, gate
from tir_harness.analysis.render import format_terminal
from tir_harness.analysis.report import MANIFEST_JSON, read_manifest, write_summary
from tir_harness.cli.args import Parser, UsageError
from tir_harness.records.load import ReportError, load_records
from tir_harness.run.shards import Shard, parse_shard
from tir_harness.util.files import write_atomic
from tir_harness.util.text import one_line, sanitize

# Options that say where or how fast a shard ran, not what it computed: they may differ between shards.
_PER_MACHINE = frozenset({
    "shard", "report_dir", "store_dir", "refresh", "data_dir", "server_urls", "server_timeout", "server_retries",
    "max_inflight", "gpu_per_worker", "gpu_memory_utilization", "kv_cache_memory", "tensor_parallel_size",
    "enforce_eager", "baseline", "gate", "max_drop", "alpha",
})  # fmt: skip


class MergeError(ValueError):
    """Runs that cannot be merged; the message is one line."""


def _parser() -> Parser:
    parser = Parser(prog="tir-harness merge", description="Join the run folders of --shard I/N runs into one.")
    parser.add_argument("runs", metavar="RUN", nargs="+", help="the run folders of every shard")
    parser.add_argument("--out", required=True, help="the merged run folder (created)")
    parser.add_argument("--baseline", help="gate against this run (default: the shards' --baseline if they gated)")
    parser.add_argument("--max-drop", type=float, default=None, help="tolerated drop in points (default: shards')")
    parser.add_argument("--alpha", type=float, default=None, help="McNemar's significance level (default: shards')")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return parser


def _shard_run(path: Path) -> tuple[Shard, dict[str, Any]]:
    if not path.is_dir():
        raise MergeError(f"{path}: not a run folder")
    manifest = read_manifest(path)
    if manifest is None:
        raise MergeError(f"{path}: no readable {MANIFEST_JSON} (not a finished run)")
    options = manifest.get("options") if isinstance(manifest.get("options"), dict) else {}
    if not options.get("shard"):
        raise MergeError(f"{path}: not a shard run (it ran without --shard)")
    if manifest.get("interrupted") or "finished" not in manifest:
        raise MergeError(f"{path}: the run did not finish; run it again (it resumes from its store)")
    try:
        return parse_shard(str(options["shard"])), manifest
    except ValueError as exc:
        raise MergeError(f"{path}: --shard {exc}") from None


def _check_shards(runs: list[tuple[Path, Shard, dict[str, Any]]]) -> None:
    counts = {shard.count for _, shard, _ in runs}
    if len(counts) > 1:
        raise MergeError(f"the runs are shards of different counts: {', '.join(f'{s} ({p})' for p, s, _ in runs)}")
    count = counts.pop()
    seen: dict[int, Path] = {}
    for path, shard, _ in runs:
        if shard.index in seen:
            raise MergeError(f"shard {shard} given twice: {seen[shard.index]} and {path}")
        seen[shard.index] = path
    missing = [f"{i}/{count}" for i in range(count) if i not in seen]
    if missing:
        raise MergeError(f"shard {', '.join(missing)} missing (given: {', '.join(str(s) for _, s, _ in runs)})")


def _check_settings(runs: list[tuple[Path, Shard, dict[str, Any]]]) -> None:
    first_path, _, first = runs[0]

    def settings(manifest: dict[str, Any]) -> dict[str, Any]:
        options = {k: v for k, v in manifest.get("options", {}).items() if k not in _PER_MACHINE}
        engine = manifest.get("engine") if isinstance(manifest.get("engine"), dict) else {}
        versions = manifest.get("versions") if isinstance(manifest.get("versions"), dict) else {}
        return {
            **{f"--{k.replace('_', '-')}": v for k, v in options.items()},
            "the model (engine's model identity)": engine.get("model_identity"),
            "the harness version": versions.get("tir-harness"),
            "the harness revision": manifest.get("git_revision"),
        }

    want = settings(first)
    for path, _, manifest in runs[1:]:
        have = settings(manifest)
        for key in sorted(set(want) | set(have)):
            # A run its store held in full started no engine, and says no model identity: unknown, not different.
            if want.get(key) != have.get(key) and None not in (want.get(key), have.get(key)):
                raise MergeError(
                    f"{path} does not fit {first_path}: {key} is {json.dumps(have.get(key))} there, "
                    f"{json.dumps(want.get(key))} here"
                )


def _check_problems(runs: list[tuple[Path, Shard, dict[str, Any]]], records: list[list[dict[str, Any]]]) -> None:
    test_ids = {str(r.get("test_id")) for shard_records in records for r in shard_records}
    for (path, shard, _), shard_records in zip(runs, records, strict=True):
        mine = shard.share(test_ids)
        stray = sorted({str(r.get("test_id")) for r in shard_records} - mine)
        if stray:
            raise MergeError(
                f"{path}: its problems are not shard {shard} of the runs' problems ({stray[0]} belongs to another "
                "share): the shards ran with different -k, -m, data or an incomplete selection"
            )
        missing = sorted(mine - {str(r.get("test_id")) for r in shard_records})
        if missing:
            raise MergeError(f"{path}: shard {shard} has no record of {missing[0]} (a problem of its share)")


def merge(paths: Sequence[str], out: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any], Path]:
    """Check the runs and write the merged trajectories.jsonl and manifest.json into `out`; returns the
    records, the manifest and the folder.  Raises MergeError (or ReportError for a damaged file)."""
    runs = [(Path(p), *_shard_run(Path(p))) for p in paths]
    _check_shards(runs)
    runs.sort(key=lambda run: run[1].index)
    _check_settings(runs)
    records = [load_records(path) for path, _, _ in runs]
    _check_problems(runs, records)
    target = Path(out)
    if any(target.resolve() == path.resolve() for path, _, _ in runs):
        raise MergeError(f"--out {target}: is one of the shard runs")
    if target.exists() and not target.is_dir():
        raise MergeError(f"--out {target}: exists and is not a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
        # The merged run's id, as the reporter gives every record of a run its own.
        merged = [{**r, "run_id": target.name} for shard_records in records for r in shard_records]
        text = "".join(sanitize(json.dumps(r, ensure_ascii=False)) + "\n" for r in merged)
        write_atomic(target / "trajectories.jsonl", text)
        manifest = dict(runs[0][2])
        manifest["options"] = {**manifest.get("options", {}), "shard": None}
        manifest["run_id"] = target.name
        manifest["started"] = min(str(m.get("started", "")) for _, _, m in runs)
        manifest["finished"] = max(str(m.get("finished", "")) for _, _, m in runs)
        manifest["problems"] = sum(int(m.get("problems") or 0) for _, _, m in runs)
        manifest["merged"] = [
            {"shard": str(s), "run": str(p), "run_id": m.get("run_id"), "problems": m.get("problems")}
            for p, s, m in runs
        ]
        write_atomic(target / MANIFEST_JSON, json.dumps(manifest, indent=2, default=str) + "\n")
    except OSError as exc:
        raise MergeError(f"--out {target}: cannot write there ({exc.strerror or exc})") from None
    return merged, manifest, target


def main(argv: Sequence[str] | None = None) -> int:
    """0 merged (and the gate passed), 1 the gate failed, 2 bad input or runs that do not fit."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        records, manifest, out = merge(args.runs, args.out)
        options = manifest.get("options", {})
        baseline_path = args.baseline or (options.get("baseline") if options.get("gate") else None)
        baseline = load_records(baseline_path) if baseline_path else None
        verdict: GateResult | None = None
        if baseline is not None:
            comparison = compare(records, baseline)
            max_drop = args.max_drop if args.max_drop is not None else float(options.get("max_drop") or 0.0)
            alpha = args.alpha if args.alpha is not None else float(options.get("alpha") or 0.05)
            try:
                verdict = (
                    gate(comparison, max_drop, alpha)
                    if comparison.n
                    else GateResult(False, "no problem of this run is in the baseline")
                )
            except ValueError as exc:
                raise UsageError(f"tir-harness merge: {exc}") from None
        try:
            summary = write_summary(
                out, records, baseline, plots=not args.no_plots, html=True, gate_result=verdict, manifest=manifest
            )
        except OSError as exc:
            raise MergeError(f"--out {out}: cannot write the report ({exc.strerror or exc})") from None
    except (MergeError, ReportError, UsageError) as exc:
        message = one_line(exc)
        print(message if message.startswith("tir-harness merge: ") else f"tir-harness merge: error: {message}",
              file=sys.stderr)  # fmt: skip
        return 2
    print("\n".join(format_terminal(summary)))
    print(f"merged {len(manifest['merged'])} shards ({len(records)} records) into {out}")
    if verdict is not None:
        print(f"gate {'PASSED' if verdict.passed else 'FAILED'}: {verdict.reason}")
        return 0 if verdict.passed else 1
    return 0
