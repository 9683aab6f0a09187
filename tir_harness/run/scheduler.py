"""How many trajectories a run keeps in flight, and how many threads advance them.

The run drives its trajectories with run/driver.py, each advancing on its own (no barrier between turns) and
none holding a thread while its request is out: the engine batches whatever requests are in flight, code runs
in the sandbox while other trajectories generate, and a trajectory's future resolves the moment it ends.
"""

from __future__ import annotations

import math
from typing import Any

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

    A trajectory keeps its session from its first code block to its end, so beyond the sessions some would wait
    for one (run/driver.py parks them); fewer than the engine's batch would leave it underfull.
    """
    want = math.ceil((engine_slots or DEFAULT_ENGINE_SLOTS) * HEADROOM)
    if sandbox_slots is not None:
        want = min(want, sandbox_slots)
    return max(1, want)


# Code runs in the driver's threads (the sandbox is synchronous), and a cell may take up to the sandbox's timeout
# (a model's `time.sleep(9)`): with this many, it takes 64 such cells at once to hold up the completions waiting
# to be advanced, while the threads stay few whatever the number in flight (issue 23: < 100 in all).
DRIVER_WORKERS = 64


def driver_workers(max_inflight: int) -> int:
    """Threads of the run's driver for `max_inflight` trajectories in flight: never more than trajectories."""
    return max(1, min(max_inflight, DRIVER_WORKERS))
