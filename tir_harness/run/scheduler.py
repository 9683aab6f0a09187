"""Run many trajectories at once, each advancing on its own: no barrier between turns.

Each trajectory is a plain blocking loop in a worker thread; the engine batches whatever requests are in
flight, and code runs in the executor while other trajectories generate.  A trajectory's next turn is
submitted the moment its code has run, and its future resolves the moment it ends.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


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
