"""Many trajectories at once without a thread each: `trajectory_steps` driven by the engine's callbacks.

`run_trajectory` holds a thread for a trajectory's whole life, and that thread spends it waiting for the engine:
a thousand requests in flight would be a thousand threads.  Here a trajectory holds no thread while its request
is out.  The engine's future hands the completion to a small pool of threads (`workers`), one of which advances
the trajectory to its next request (submitted, not waited for) or its end; code runs in those threads too (the
sandbox is synchronous).  Threads: `workers`, whatever the number of trajectories in flight; at most
`max_inflight` trajectories are started at once, the others wait their turn in submission order.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tir_harness.engines.base import Engine, EngineError
from tir_harness.records.trajectory import Trajectory
from tir_harness.run.loop import (
    CodeSession,
    Execute,
    Generate,
    LoopConfig,
    SessionFactory,
    Step,
    execute,
    trajectory_steps,
)


@dataclass(eq=False)
class _Flight:
    steps: Generator[Step, Any, Trajectory]
    future: Future[Trajectory]
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    session: CodeSession | None = None


class Driver:
    """Runs trajectories on `engine` and sessions from `new_session`; `start()` returns each one's future."""

    def __init__(
        self, engine: Engine, new_session: SessionFactory, *, workers: int = 8, max_inflight: int | None = None
    ) -> None:
        if workers < 1 or (max_inflight is not None and max_inflight < 1):
            raise ValueError("workers and max_inflight must be at least 1")
        self.engine = engine
        self.new_session = new_session
        self.max_inflight = max_inflight
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="tir-driver")
        self._lock = threading.Lock()
        self._waiting: deque[_Flight] = deque()
        self.inflight = 0

    def start(self, question: str, config: LoopConfig, request_id: str = "") -> Future[Trajectory]:
        flight = _Flight(trajectory_steps(question, config, request_id), Future())
        with self._lock:
            if self.max_inflight is not None and self.inflight >= self.max_inflight:
                self._waiting.append(flight)
                return flight.future
            self.inflight += 1
        self._pool.submit(self._advance, flight, None)
        return flight.future

    def close(self) -> None:
        """Wait for the pool's threads; trajectories still waiting for the engine are the caller's to settle."""
        self._pool.shutdown(wait=True)

    def _advance(self, flight: _Flight, reply: Any) -> None:
        """Run `flight` until its next request is out, or its end (in a pool thread)."""
        try:
            while True:
                step = flight.steps.send(reply)
                if isinstance(step, Execute):
                    if flight.session is None:
                        flight.session = flight.stack.enter_context(self.new_session())
                    reply = execute(flight.session, step)
                    continue
                assert isinstance(step, Generate)
                try:
                    pending = self.engine.submit(step.request)
                except EngineError as exc:
                    reply = exc
                    continue
                pending.add_done_callback(lambda done: self._resume(flight, done))
                return
        except StopIteration as end:
            self._end(flight, result=end.value)
        except BaseException as exc:  # a bug, or the sandbox closed: the trajectory's future says so
            self._end(flight, error=exc)

    def _resume(self, flight: _Flight, done: Future[Any]) -> None:
        # In the engine's thread: hand over at once, never run the trajectory there.
        try:
            reply: Any = done.result()
        except EngineError as exc:
            reply = exc
        except BaseException as exc:
            self._end(flight, error=exc)
            return
        try:
            self._pool.submit(self._advance, flight, reply)
        except RuntimeError as exc:  # the driver closed meanwhile
            self._end(flight, error=exc)

    def _end(self, flight: _Flight, *, result: Trajectory | None = None, error: BaseException | None = None) -> None:
        try:
            flight.stack.close()
        except Exception as exc:  # closing a session failed: the trajectory is done, say what went wrong
            error = error or exc
        if error is not None:
            flight.future.set_exception(error)
        else:
            flight.future.set_result(result)  # type: ignore[arg-type]
        with self._lock:
            following = self._waiting.popleft() if self._waiting else None
            if following is None:
                self.inflight -= 1
        if following is not None:
            try:
                self._pool.submit(self._advance, following, None)
            except RuntimeError as exc:
                following.future.set_exception(exc)
