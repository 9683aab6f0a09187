"""Many trajectories at once without a thread each: `trajectory_steps` driven by the engine's callbacks.

`run_trajectory` holds a thread for a trajectory's whole life, and that thread spends it waiting for the engine:
a thousand requests in flight would be a thousand threads.  Here a trajectory holds no thread while its request
is out.  The engine's future hands the completion to a small pool of threads (`workers`), one of which advances
the trajectory to its next request (submitted, not waited for) or its end; code runs in those threads too (the
sandbox is synchronous).  Threads: `workers`, whatever the number of trajectories in flight; at most
`max_inflight` trajectories are started at once, the others wait their turn in submission order.

Sessions are a bounded resource: a trajectory holds its sandbox session from its first code block to its end,
and at most `max_sessions` do at once.  One that reaches its first code block while all are held is parked
(holding no thread) until one ends, so the executor never has to take a live trajectory's session (and its
variables) to make room.  `max_sessions=None` leaves the sandbox to cope: an `Executor` with
`replay_on_restart` replays an evicted session's cells, the reference's way, and never needs the parking.
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


class DriverClosed(RuntimeError):
    """The driver was closed before this trajectory could go on."""


@dataclass(eq=False)
class _Flight:
    steps: Generator[Step, Any, Trajectory]
    future: Future[Trajectory]
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    session: CodeSession | None = None
    holds_session: bool = False  # counted in Driver.sessions
    parked: Execute | None = None  # the step it waits to run until a session is free


class Driver:
    """Runs trajectories on `engine` and sessions from `new_session`; `start()` returns each one's future."""

    def __init__(
        self,
        engine: Engine,
        new_session: SessionFactory,
        *,
        workers: int = 8,
        max_inflight: int | None = None,
        max_sessions: int | None = None,
    ) -> None:
        if workers < 1 or (max_inflight is not None and max_inflight < 1):
            raise ValueError("workers and max_inflight must be at least 1")
        if max_sessions is not None and max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.engine = engine
        self.new_session = new_session
        self.max_inflight = max_inflight
        self.max_sessions = max_sessions
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="tir-driver")
        self._lock = threading.Condition()
        self._waiting: deque[_Flight] = deque()  # not started yet (max_inflight)
        self._parked: deque[_Flight] = deque()  # started, waiting for a session (max_sessions)
        self._closed = False
        self.inflight = 0  # trajectories started and not ended
        self.sessions = 0  # trajectories holding a session (or handed one)

    @property
    def parked(self) -> int:
        """Trajectories started and waiting for a session."""
        with self._lock:
            return len(self._parked)

    def start(self, question: str, config: LoopConfig, request_id: str = "") -> Future[Trajectory]:
        flight = _Flight(trajectory_steps(question, config, request_id), Future())
        with self._lock:
            if self._closed:
                raise DriverClosed("the driver is closed: no trajectory can start")
            if self.max_inflight is not None and self.inflight >= self.max_inflight:
                self._waiting.append(flight)
                return flight.future
            self.inflight += 1
        self._submit(flight, None)
        return flight.future

    def close(self, cancel: bool = False, timeout: float | None = None) -> bool:
        """No more starts; wait until every trajectory started has ended, then stop the threads.  With `cancel`,
        the trajectories not started yet are dropped (their futures cancelled), else they run first.  Close the
        engine first to have the ones waiting for it end at once (their requests fail).  False if `timeout`
        seconds passed first (the threads are left to end on their own)."""
        with self._lock:
            self._closed = True
            dropped = list(self._waiting) if cancel else []
            if cancel:
                self._waiting.clear()
        for flight in dropped:
            flight.future.cancel()
        with self._lock:
            ended = self._lock.wait_for(lambda: self.inflight == 0, timeout)
        self._pool.shutdown(wait=ended)
        return ended

    def _submit(self, flight: _Flight, reply: Any, step: Execute | None = None) -> None:
        try:
            self._pool.submit(self._advance, flight, reply, step)
        except RuntimeError as exc:  # the pool is shut down: close() gave up waiting
            self._end(flight, error=DriverClosed(f"the driver is closed ({exc})"))

    def _advance(self, flight: _Flight, reply: Any, step: Execute | None = None) -> None:
        """Run `flight` until its next request is out, it is parked, or its end (in a pool thread)."""
        try:
            while True:
                current: Step = step if step is not None else flight.steps.send(reply)
                step = None
                if isinstance(current, Execute):
                    if flight.session is None:
                        if not self._take_session(flight, current):
                            return  # parked: a session that ends hands its place over (`_end`)
                        flight.session = flight.stack.enter_context(self.new_session())
                    reply = execute(flight.session, current)
                    continue
                assert isinstance(current, Generate)
                try:
                    pending = self.engine.submit(current.request)
                except EngineError as exc:
                    reply = exc
                    continue
                pending.add_done_callback(lambda done: self._resume(flight, done))
                return
        except StopIteration as end:
            self._end(flight, result=end.value)
        except BaseException as exc:  # a bug, or the sandbox closed: the trajectory's future says so
            self._end(flight, error=exc)

    def _take_session(self, flight: _Flight, step: Execute) -> bool:
        """A session for `flight` if fewer than `max_sessions` are held; else park it with `step`."""
        if flight.holds_session:  # handed over by a trajectory that ended
            return True
        with self._lock:
            if self.max_sessions is None or self.sessions < self.max_sessions:
                self.sessions += 1
                flight.holds_session = True
                return True
            flight.parked = step
            self._parked.append(flight)
            return False

    def _resume(self, flight: _Flight, done: Future[Any]) -> None:
        # In the engine's thread: hand over at once, never run the trajectory there.
        try:
            reply: Any = done.result()
        except EngineError as exc:
            reply = exc
        except BaseException as exc:
            self._end(flight, error=exc)
            return
        self._submit(flight, reply)

    def _end(self, flight: _Flight, *, result: Trajectory | None = None, error: BaseException | None = None) -> None:
        try:
            flight.stack.close()  # its session first: the place handed over below is free in the sandbox too
        except Exception as exc:  # closing a session failed: the trajectory is done, say what went wrong
            error = error or exc
        if error is not None:
            flight.future.set_exception(error)
        else:
            flight.future.set_result(result)  # type: ignore[arg-type]
        with self._lock:
            heir = None
            if flight.holds_session:
                flight.holds_session = False
                if self._parked:  # the session's place goes to the longest parked trajectory
                    heir = self._parked.popleft()
                    heir.holds_session = True
                else:
                    self.sessions -= 1
            following = self._waiting.popleft() if self._waiting else None
            if following is None:
                self.inflight -= 1
                self._lock.notify_all()
        if heir is not None:
            step, heir.parked = heir.parked, None
            self._submit(heir, None, step)
        if following is not None:
            self._submit(following, None)
