"""The run's signals: `Interrupts` owns SIGINT and SIGTERM for the run.

The first signal stops new work and lets the run finish cleanly; the second one sets `abort`, on which the
runner stops waiting for trajectories in flight, so the run ends at once with the summary of what finished.
Under pytest-xdist the controller decides for its workers (see the class).  (Hostile text is made safe where
the run hands the engine and the sandbox to the loop: run/boundary.py.)
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

# What a pytest-xdist controller sends its local workers on its first signal (wind down) and its second (stop).
WORKER_STOP = signal.SIGUSR1
WORKER_ABORT = signal.SIGUSR2


class Interrupts:
    """SIGINT and SIGTERM for the run (main thread only; elsewhere Python's defaults stay).

    The first signal winds the run down (nothing new starts, what is in flight finishes and is reported); the
    second sets `abort` and stops at once, still reporting what finished.  How depends on the process:

    - `single` (no xdist): the first raises KeyboardInterrupt (pytest stops the test loop as it always did);
      the second sets `abort`, on which the runner stops waiting for the trajectories in flight.
    - `controller` (pytest-xdist's): each signal is passed on to the workers (`forward`).  The first raises
      nothing: the workers wind down and report through xdist as usual.  The second raises KeyboardInterrupt
      to leave xdist's loop at once.
    - `worker`: SIGINT and SIGTERM are ignored: a terminal's Ctrl-C reaches the whole process group, and the
      controller alone decides, passing its first signal on as `WORKER_STOP` and its second as `WORKER_ABORT`;
      so a signal to the controller and one to the group do the same.  The first calls `on_stop` (the runner
      ends the test loop after the test in progress, so xdist sees no KeyboardInterrupt and no crashed worker);
      the second raises KeyboardInterrupt to cut the test's wait short.  Until `install`, the controller's
      set-up call has those two blocked (pending, not lost) and SIGINT and SIGTERM ignored.

    No KeyboardInterrupt is raised while the run is closing or inside `deferred()` (a report line being written).
    """

    def __init__(self, role: str = "single") -> None:
        self.role = role
        self.count = 0
        self.closing = False  # the run is shutting down: nothing is left for a KeyboardInterrupt to stop
        self.stopping = threading.Event()  # the first signal came
        self.abort = threading.Event()  # the second one came
        self.forward: Callable[[int], None] | None = None  # controller: pass the n-th signal on to the workers
        self.on_stop: Callable[[], None] | None = None  # worker: end the test loop
        self._previous: dict[int, Any] = {}
        self._deferring = 0
        self._deferred = False

    def install(self) -> bool:
        """Put the handlers in place; False where that cannot be done (not the main thread or interpreter)."""
        if self._previous:
            return True
        if threading.current_thread() is not threading.main_thread():
            return False
        worker = self.role == "worker"
        handled = (WORKER_STOP, WORKER_ABORT) if worker else (signal.SIGINT, signal.SIGTERM)
        ignored = (signal.SIGINT, signal.SIGTERM) if worker else ()
        try:
            for signum in handled:
                self._previous[signum] = signal.signal(signum, self._handle)
            for signum in ignored:
                self._previous[signum] = signal.signal(signum, signal.SIG_IGN)
            if worker:  # what the controller passed on before now is delivered here
                signal.pthread_sigmask(signal.SIG_UNBLOCK, handled)
        except (ValueError, OSError):  # not the main interpreter, or a platform without it
            self.uninstall()
            return False
        return True

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.role == "worker":
            stage = 2 if signum == WORKER_ABORT else 1
            if stage <= self.count:
                return
            self.count = stage
        else:
            self.count += 1
            if self.forward is not None:
                self.forward(self.count)
        if self.count == 1 and not self.closing:
            self.stopping.set()
            if self.role == "single":
                # As Ctrl-C always did: pytest stops the test loop, and the run finishes what is in flight.
                self._interrupt()
            elif self.on_stop is not None:
                self.on_stop()
            return
        self.abort.set()  # the runner stops waiting; the summary of what finished is still written
        if self.role != "single":
            self._interrupt()  # out of xdist's loop, or out of the test's wait, at once

    def _interrupt(self) -> None:
        if self.closing:
            return
        if self._deferring:
            self._deferred = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A block that a signal must not cut in two: its KeyboardInterrupt is raised when the block ends."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
            if not self._deferring and self._deferred:
                self._deferred = False
                if not self.closing:
                    raise KeyboardInterrupt
