"""Barrier-free scheduling against a ToRA-style round-based loop, on the same engine, in one process.

    python benchmarks/perf/loop.py [--problems 64] [--model gemma-3-270m] [--data-dir DIR]

Both ways run the same loop code (so greedy decoding must give identical trajectories, which is checked);
the round-based way puts a barrier around every round, as ToRA, Qwen2.5-Math and the reference
implementation do: all unfinished problems generate, everyone waits for the slowest, all code runs, and
only then the next round starts.  Prints wall time, the ratio, the share of wall time the engine had work,
tokens per second, and the time to collect every problem of every dataset as pytest items.

So that a change in the ratio explains itself, it also prints, for each way, the mean number of sequences in
the engine per step and the median gap from a turn's completion to the trajectory's next request (the
harness's own latency: code, observation, prompt), and the workload's bound: generated tokens on the longest
trajectory (what the no-barrier loop must decode one after another) against the sum over rounds of the
longest turn of each round (what the barrier makes everyone wait for), and the efficiency against it (the
measured speed-up over the bound's).  When the measured speed-up follows the bound, the trajectories changed;
when it falls below it, the harness got slower (docs/throughput.md).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
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
from tir_harness.run.driver import Driver
from tir_harness.run.loop import LoopConfig
from tir_harness.run.problems import load
from tir_harness.run.prompts import FORMATS, PROMPT_TYPES
from tir_harness.run.scheduler import driver_workers
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


class Gaps:
    """Wraps what the loop submits to: the time from a turn's completion, as the loop sees it, to the
    trajectory's next request (a barrier's wait is not in it: it is measured on the loop's side)."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._done: dict[str, float] = {}  # request id -> when its completion reached the loop
        self.gaps: list[float] = []

    def submit(self, request: GenerationRequest) -> Future[Completion]:
        now = time.perf_counter()
        with self._lock:
            if request.continues in self._done:
                self.gaps.append(now - self._done.pop(request.continues))
        outer: Future[Completion] = Future()

        def completed(inner: Future[Completion]) -> None:
            with self._lock:  # before the loop can see the completion, so its next request finds the time
                self._done[request.request_id] = time.perf_counter()
            exc = inner.exception()
            outer.set_exception(exc) if exc is not None else outer.set_result(inner.result())

        self.target.submit(request).add_done_callback(completed)
        return outer

    def info(self) -> dict[str, Any]:
        return self.target.info()

    def close(self) -> None:
        pass


def bound(trajectories: list[Trajectory]) -> tuple[int, int, str]:
    """The workload's own limit on the speed-up, in tokens decoded one after another: without a barrier, the
    longest trajectory's turns back to back; with one, the sum over rounds of each round's longest turn.
    Returns both and a line saying where they come from."""
    turns = [[turn.completion_tokens for turn in t.turns] for t in trajectories]
    longest_turns = [max(t[r] for t in turns if len(t) > r) for r in range(max(map(len, turns), default=0))]
    longest = max(range(len(turns)), key=lambda i: sum(turns[i]), default=0)
    chain, barrier = sum(turns[longest]) if turns else 0, sum(longest_turns)
    line = (
        f"workload bound: {barrier / max(1, chain):.2f}x from scheduling alone: with a barrier {barrier} tokens "
        f"one after another (each round's longest turn: {'+'.join(map(str, longest_turns))}), without {chain} "
        f"(problem {longest}'s turns: {'+'.join(map(str, turns[longest] if turns else []))})"
    )
    return chain, barrier, line


def run(mode: str, engine: Any, executor: Executor, config: LoopConfig, questions: list[str]) -> dict[str, Any]:
    engine.reset_prefix_cache()
    busy0, steps0, seqs0 = engine.busy_seconds, engine.steps, engine.step_sequences
    barrier = RoundBarrier(engine, len(questions)) if mode == "rounds" else None
    target = Gaps(barrier or engine)
    driver = Driver(target, executor.session, workers=driver_workers(len(questions)))

    def start_one(i: int, question: str) -> Future[Trajectory]:
        future = driver.start(question, config, f"{mode}-{i}")
        if barrier is not None:
            future.add_done_callback(lambda _: barrier.finished_one())
        return future

    start = time.perf_counter()
    futures = [start_one(i, q) for i, q in enumerate(questions)]
    trajectories = [f.result() for f in futures]
    wall = time.perf_counter() - start
    driver.close()
    tokens = sum(t.completion_tokens for t in trajectories)
    steps = engine.steps - steps0
    return {
        "mode": mode,
        "wall": wall,
        "busy": (engine.busy_seconds - busy0) / wall,
        "steps": steps,
        "batch": (engine.step_sequences - seqs0) / max(1, steps),
        "gap": statistics.median(target.gaps) if target.gaps else float("nan"),
        "bound": bound(trajectories),
        "ends": collections.Counter(t.end_reason for t in trajectories),
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
    parser.add_argument("--max-model-len", type=int, default=2048, help="prompt plus turn, tokens")
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
        VLLMConfig(spec.path, dtype=args.dtype, max_model_len=args.max_model_len, enforce_eager=True,
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
    print(f"problems: {len(questions)}; turns per trajectory: {hist}; round-based rounds: {rounds['rounds']}; "
          f"ends: {dict(sorted(free['ends'].items()))}")  # fmt: skip
    for r in (rounds, free):
        name = "round-based (ToRA-style)" if r["mode"] == "rounds" else "tir-harness (no barrier)"
        print(f"{name:26} wall {r['wall']:6.2f} s  engine busy {r['busy']:6.1%}  "
              f"{r['tokens_per_s']:7.1f} tokens/s  ({r['tokens']} tokens)  {r['steps']} steps, "
              f"mean batch {r['batch']:5.2f}/step  median gap completion->next request "
              f"{r['gap'] * 1000:6.1f} ms")  # fmt: skip
    speed_up = rounds["wall"] / free["wall"]
    print(f"speed-up: {speed_up:.2f}x (target >= 1.5x); engine busy target >= 90%")
    chain, barrier, line = free["bound"]
    print(line)
    # At 100% the harness gets all the workload allows; below it, either its steps cost more (a larger batch
    # per step: on vLLM's CPU build ~10% from 4 to 8 sequences) or it took more steps (next line).
    allowed, in_steps = barrier / max(1, chain), rounds["steps"] / max(1, free["steps"])
    print(f"efficiency against the bound: {speed_up / allowed:.0%} (measured {speed_up:.2f}x of the bound's "
          f"{allowed:.2f}x; in engine steps {in_steps:.2f}x)")  # fmt: skip
    # One step per token of the longest trajectory is all a harness that holds nothing back needs (plus the few
    # steps over which vLLM splits the prompts of a full batch); more means turns waited (a sandbox, a lock).
    extra = free["steps"] - chain, rounds["steps"] - barrier
    print(f"steps beyond the workload's own: no barrier {extra[0]}, round-based {extra[1]}")
    print(f"identical trajectories: {identical}/{len(questions)}")


if __name__ == "__main__":
    main()
