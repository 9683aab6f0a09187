"""Run many trajectories at once, each advancing on its own: no barrier between turns.

Each trajectory is a plain blocking loop in a worker thread; the engine batches whatever requests are in
flight, and code runs in the executor while other trajectories generate.  A trajectory's next turn is
submitted the moment its code has run, and its future resolves the moment it ends.

A thread per trajectory in flight is not what limits a run: measured with an engine that answers at once
(benchmarks/perf/harness.py), the trajectory threads are idle most of the time and the cost is in pytest's
per-test work, the sandbox and the store, so the loop stays a readable blocking function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

# When the engine does not say how many sequences it batches (a custom engine, a server): vLLM's default
# max_num_seqs on most GPUs.
DEFAULT_ENGINE_SLOTS = 256
# Trajectories beyond the engine's batch: while some run code or wait for a sandbox, others take their
# places in the batch, so the engine never runs below its batch size for want of requests.
HEADROOM = 1.25


def engine_slots(engine: Any) -> int | None:
    """How many sequences the engine batches at once (`Engine.capacity()`, vLLM's max_num_seqs), if it says.
    An engine written before `capacity` was part of the interface has none: unknown."""
    capacity = getattr(engine, "capacity", None)
    value = capacity() if callable(capacity) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def automatic_max_inflight(engine_slots: int | None, sandbox_slots: int | None) -> int:
    """Trajectories in flight for an engine batching `engine_slots` sequences and a sandbox holding at most
    `sandbox_slots` live sessions (None: unknown).

    A trajectory keeps its session from its first code block to its end, so more trajectories than sessions
    would evict live sessions (and their variables); fewer than the engine's batch would leave it underfull.
    """
    want = math.ceil((engine_slots or DEFAULT_ENGINE_SLOTS) * HEADROOM)
    if sandbox_slots is not None:
        want = min(want, sandbox_slots)
    return max(1, want)


class Scheduler:
    """A bounded pool of trajectory jobs, started in submission order, finished in any order."""

    def __init__(self, max_inflight: int = 256) -> None:
        if max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        self.max_inflight = max_inflight
        self._pool = ThreadPoolExecutor(max_workers=max_inflight, thread_name_prefix="tir-trajectory")

    def submit(self, job: Callable[[], T]) -> Future[T]:
        return self._pool.submit(job)

    def close(self, cancel: bool = False) -> None:
        """Wait for running jobs; with cancel, jobs not yet started are dropped (Ctrl-C)."""
        self._pool.shutdown(wait=True, cancel_futures=cancel)
