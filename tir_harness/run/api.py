"""`tir_harness.evaluate`: a run from Python, without pytest, on the same `Evaluation` the plugin drives.

    from tir_harness import evaluate

    result = evaluate(model="gemma-3-270m", datasets=["gsm8k"], max_tokens=512, kv_cache_memory=2**29)
    print(result.accuracy, len(result.records))

Settings are the `RunConfig` fields (the pytest options of the same names: `temperature`, `samples`,
`engine`, `engine_args`, `store_dir`, ...).  The result store works as in a pytest run: what it holds is not
generated again, and every finished trajectory is in it whatever happens to the process.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tir_harness.records.store import resolve_store_path
from tir_harness.run.evaluation import Evaluation, RunConfig, parse_engine_args, server_urls
from tir_harness.run.problems import Problem, load
from tir_harness.run.results import Result

# Where the store is when neither `store_dir` nor $TIR_STORE_DIR says: beside the caller, as pytest's cache is.
DEFAULT_CACHE = Path(".tir-harness")


@dataclass(frozen=True)
class EvaluationResult:
    """What a run gave: each problem's `Result` (in the order asked), and the engine that ran them."""

    results: tuple[Result, ...]
    engine_info: Mapping[str, Any]
    run_id: str

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for result in self.results for record in result.records]

    @property
    def accuracy(self) -> float:
        """Share of problems whose answer (the majority over samples) equals the gold answer."""
        return sum(result.correct for result in self.results) / len(self.results) if self.results else 0.0


def evaluate(
    model: str | None = None,
    datasets: Iterable[str | tuple[str, str]] = (),
    *,
    problems: Iterable[Problem] = (),
    data_dir: str | Path | None = None,
    run_id: str | None = None,
    **settings: Any,
) -> EvaluationResult:
    """Evaluate `model` on every problem of `datasets` (a name for its test split, or (name, split)) and on
    `problems`.  Bad settings are a ValueError or TypeError with one line; a run that cannot start is a
    `StartupError` (run/evaluation.py)."""
    config = run_config(model, settings)
    chosen = list(problems)
    for dataset in datasets:
        name, split = (dataset, "test") if isinstance(dataset, str) else dataset
        chosen += load(name, split, data_dir=Path(data_dir).expanduser() if data_dir else None)
    run_id = run_id or f"{(model or config.engine_name).replace('/', '_')}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    evaluation = Evaluation(config, run_id)
    unique = list({problem.id: problem for problem in chosen}.values())
    evaluation.plan(unique)
    try:
        evaluation.start()
        results = tuple(
            Result(problem, [evaluation.future(problem, s).result() for s in range(config.samples)])
            for problem in unique
        )
        return EvaluationResult(results, dict(evaluation.engine_info), run_id)
    finally:
        evaluation.close(cancel=True)


def run_config(model: str | None, settings: Mapping[str, Any]) -> RunConfig:
    """A `RunConfig` from keyword settings, with the command line's conveniences: `engine_args` as a mapping or
    KEY=VALUE strings, `server_urls` as a list, `store_dir` defaulting to $TIR_STORE_DIR or ./.tir-harness/."""
    known = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"evaluate() got unknown settings: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = dict(settings)
    args = values.get("engine_args", ())
    if isinstance(args, Mapping):
        values["engine_args"] = tuple(args.items())
    elif args and isinstance(args[0], str):
        values["engine_args"] = parse_engine_args(args)
    urls: Sequence[str] | str = values.get("server_urls", ())
    values["server_urls"] = server_urls([urls] if isinstance(urls, str) else urls)
    values["store_dir"] = resolve_store_path(values.get("store_dir"), DEFAULT_CACHE)
    return RunConfig(model=model, **values)


__all__ = ["EvaluationResult", "evaluate"]
