"""Barrier-free scheduling against a ToRA-style round-based loop, on the same engine, in one process.

    python benchmarks/perf/loop.py [--problems 64] [--model gemma-3-270m] [--data-dir DIR]

Both ways run the same loop code (so greedy decoding must give identical trajectories, which is checked);
the round-based way puts a barrier around every round, as ToRA, Qwen2.5-Math and the reference
implementation do: all unfinished problems generate, everyone waits for the slowest, all code runs, and
only then the next round starts.  Prints wall time, the ratio, the share of wall time the engine had work,
tokens per second, and the time to collect every problem of every dataset as pytest items.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from tir_harness.engines.base import Completion, GenerationRequest, SamplingConfig
from tir_harness.records.trajectory import Trajectory
from tir_harness.run.loop import LoopConfig, run_trajectory
from tir_harness.run.problems import load
from tir_harness.run.prompts import FORMATS, PROMPT_TYPES
from tir_harness.run.scheduler import Scheduler
from tir_harness.sandbox.executor import Executor


class RoundBarrier:
    """Wraps an engine so that it behaves like `LLM.generate` called once per round.

    A round's requests go to the engine only when every unfinished trajectory has asked for its next
    turn, and their answers are released together once the whole round is generated.
    """

    def __init__(self, engine: Any, active: int) -> None:
        self.engine = engine
        self.active = active
        self._lock = threading.Lock()
        self._batch: list[tuple[GenerationRequest, Future[Completion]]] = []
        self.rounds = 0

    def submit(self, request: GenerationRequest) -> Future[Completion]:
        future: Future[Completion] = Future()
        with self._lock:
            self._batch.append((request, future))
            self._maybe_flush()
        return future

    def finished_one(self) -> None:
        with self._lock:
            self.active -= 1
            self._maybe_flush()

    def _maybe_flush(self) -> None:
        if not self._batch or len(self._batch) < self.active:
            return
        batch, self._batch = self._batch, []
        self.rounds += 1
        inner = [self.engine.submit(request) for request, _ in batch]

        def release() -> None:
            for (_, outer), done in zip(batch, inner, strict=True):
                exc = done.exception()
                if exc is not None:
                    outer.set_exception(exc)
                else:
                    outer.set_result(done.result())

        threading.Thread(target=lambda: ([f.exception() for f in inner], release()), daemon=True).start()

    def info(self) -> dict[str, Any]:
        return self.engine.info()

    def close(self) -> None:
        pass


def run(mode: str, engine: Any, executor: Executor, config: LoopConfig, questions: list[str]) -> dict[str, Any]:
    engine.reset_prefix_cache()
    busy0 = engine.busy_seconds
    scheduler = Scheduler(max_inflight=len(questions))
    barrier = RoundBarrier(engine, len(questions)) if mode == "rounds" else None
    target = barrier or engine

    def job(i: int, question: str) -> Trajectory:
        try:
            return run_trajectory(question, config, target, executor.session, f"{mode}-{i}")
        finally:
            if barrier is not None:
                barrier.finished_one()

    start = time.perf_counter()
    futures = [scheduler.submit(lambda i=i, q=q: job(i, q)) for i, q in enumerate(questions)]
    trajectories = [f.result() for f in futures]
    wall = time.perf_counter() - start
    scheduler.close()
    tokens = sum(t.completion_tokens for t in trajectories)
    return {
        "mode": mode,
        "wall": wall,
        "busy": (engine.busy_seconds - busy0) / wall,
        "tokens_per_s": tokens / wall,
        "tokens": tokens,
        "turns": [len(t.turns) for t in trajectories],
        "texts": [[turn.text for turn in t.turns] for t in trajectories],
        "rounds": barrier.rounds if barrier else None,
    }


def collection_time(data_dir: Path | None) -> tuple[float, float, int]:
    """`pytest --collect-only` over every split at hand: pytest's collection time, the whole process's.

    The shipped test splits always; the train splits too when `data_dir` has them.
    """
    train = ("test", "train") if data_dir is not None else ("test",)
    splits = {"gsm8k": train, "math": train, "math500": ("test",), "svamp": ("test",), "gsm_hard": ("test",)}
    with tempfile.TemporaryDirectory() as tmp:
        body = ["import pytest\n"]
        for dataset, names in splits.items():
            for split in names:
                body.append(
                    f'@pytest.mark.tir_dataset("{dataset}", split="{split}")\n'
                    f"def test_{dataset}_{split}(problem, solve):\n    pass\n"
                )
        Path(tmp, "test_all.py").write_text("\n".join(body))
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
             *([f"--data-dir={data_dir}"] if data_dir is not None else []), tmp],
            capture_output=True, text=True, check=True, cwd=tmp,
        )  # fmt: skip
        wall = time.perf_counter() - start
    count = sum(1 for line in out.stdout.splitlines() if "::test_" in line)
    collected = float(re.search(r"collected in ([\d.]+)s", out.stdout).group(1))  # type: ignore[union-attr]
    return collected, wall, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("TIR_DATA_DIR"),
        help="<dataset>/<split>.jsonl, for the train splits (default: only the shipped test sets)",
    )
    parser.add_argument("--max-tokens", type=int, default=1024, help="per turn; the harness default")
    parser.add_argument("--max-tool-calls", type=int, default=4)
    parser.add_argument("--kv-cache-mb", type=int, default=2048)
    parser.add_argument("--skip-collection", action="store_true")
    parser.add_argument("--dtype", default="float32", help="float32 makes greedy output batch-independent")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")

    from tir_harness.engines.models import resolve_model
    from tir_harness.engines.vllm import VLLMConfig, VLLMEngine

    data_dir = Path(args.data_dir) if args.data_dir else None
    if not args.skip_collection:
        collected, wall, count = collection_time(data_dir)
        print(f"collection: {count} items in {collected:.2f} s (target <= 3 s); "
              f"whole pytest process {wall:.2f} s")  # fmt: skip

    spec = resolve_model(args.model)
    fmt = FORMATS[spec.prompt_format or "plain"]
    config = LoopConfig(
        fmt,
        PROMPT_TYPES[spec.prompt_type or "tora-fewshot"],
        SamplingConfig(temperature=0.0, max_tokens=args.max_tokens, stop=fmt.stop),
        args.max_tool_calls,
    )
    questions = [p.question for p in load("gsm8k", "test", data_dir=data_dir)[: args.problems]]
    engine = VLLMEngine(
        VLLMConfig(spec.path, dtype=args.dtype, max_model_len=2048, enforce_eager=True,
                   kv_cache_memory_bytes=args.kv_cache_mb * 2**20)
    )  # fmt: skip
    try:
        with Executor(timeout=10.0) as executor:
            run("free", engine, executor, config, questions[:4])  # warm-up: compile paths, executor pool
            rounds = run("rounds", engine, executor, config, questions)
            free = run("free", engine, executor, config, questions)
    finally:
        engine.close()

    identical = sum(a == b for a, b in zip(rounds["texts"], free["texts"], strict=True))
    hist = {n: free["turns"].count(n) for n in sorted(set(free["turns"]))}
    print(f"problems: {len(questions)}; turns per trajectory: {hist}; round-based rounds: {rounds['rounds']}")
    for r in (rounds, free):
        name = "round-based (ToRA-style)" if r["mode"] == "rounds" else "tir-harness (no barrier)"
        print(f"{name:26} wall {r['wall']:6.2f} s  engine busy {r['busy']:6.1%}  "
              f"{r['tokens_per_s']:7.1f} tokens/s  ({r['tokens']} tokens)")  # fmt: skip
    print(f"speed-up: {rounds['wall'] / free['wall']:.2f}x (target >= 1.5x); engine busy target >= 90%")
    print(f"identical trajectories: {identical}/{len(questions)}")


if __name__ == "__main__":
    main()
