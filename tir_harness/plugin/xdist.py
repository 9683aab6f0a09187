"""pytest-xdist for evaluation runs: whole shares up front, crashed workers replaced, signals decided centrally.

Shares.  xdist's `load` scheduler hands out a few tests at a time, so a worker would know only the next couple
of problems and its engine would idle.  Here the controller gives each node a slot (0..n-1) when it configures
it (`pytest_configure_node`, through `workerinput`), and the node in slot k gets the items k, k+n, k+2n, ... at
the start, followed by its shutdown; its `Runner` computes the same share from its own collection before its
first test and submits all of it.  Shares depend on slots, never on worker names (a replacement is `gw2`, ...).

A crashed worker (`os._exit`, SIGKILL, a segfault, the OOM killer).  The item it was running (the first one it
had not finished, as xdist counts) is reported failed by xdist, naming the crash.  Its other unfinished items
stay with its slot, and the replacement xdist starts (at most --max-worker-restart of them) inherits the slot
with exactly those items, as an explicit list in its workerinput; its runner takes from the result store what
the dead worker had already finished, so nothing is generated twice.  Items that no replacement takes (the
restarts are used up) are reported failed when the loop ends, naming the crash: the run always ends, and every
test has an outcome.

Signals.  The controller holds SIGINT and SIGTERM (`guard.Interrupts`, role `controller`) and passes each one
on to its local workers as `guard.WORKER_STOP` (first) or `WORKER_ABORT` (second); the workers ignore SIGINT
and SIGTERM themselves (`_WORKER_SETUP`, before pytest starts there), so a signal to the controller alone and one to
the whole process group (a terminal's Ctrl-C) do the same.  First signal: each worker ends its test loop after
the test in progress and finishes its trajectories in flight into the store; the controller's `Reporter` takes
those from the store.  Second signal: the workers stop at once; the controller waits for them at most
`ABORT_WAIT` seconds (then kills what is left) and writes the report of what finished.

Only public parts of pytest-xdist are used: the `Scheduling` protocol (xdist/scheduler/protocol.py, 3.6+), the
xdist hooks, `WorkerController`'s commands, `workerinput` and `gateway`, and execnet's `remote_exec`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from tir_harness.plugin.guard import WORKER_ABORT, WORKER_STOP

if TYPE_CHECKING:
    from xdist.workermanage import WorkerController

    from tir_harness.plugin.reporter import Reporter
    from tir_harness.plugin.runner import Runner

SHARE_KEY = "tir_share"  # workerinput: {"slot": k, "slots": n, "items": [item indices] or None (the slot's share)}
RUN_ID_KEY = "tir_run_id"  # workerinput: the controller's run id, so that the store's records carry the report's
SIGNALS_KEY = "tir_signals"  # workerinput: the controller passes its signals on to this worker
INTERRUPTED = "tir-harness: interrupted by a signal"  # a worker's session.shouldstop after the first signal
ABORT_WAIT = 1.0  # seconds the controller waits for its workers after a second signal, before killing them
SETUP_TIMEOUT = 30.0  # seconds for a new worker to answer the set-up call

# Run in each local worker before pytest starts there (execnet runs it in the main thread; only the standard
# library, so that pytest can still rewrite the plugin's asserts): SIGINT and SIGTERM ignored, the two signals
# passed on blocked, so that one sent at any moment stays pending until the runner's handlers take it; its pid.
_WORKER_SETUP = f"""
import os, signal
try:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {{{int(WORKER_STOP)}, {int(WORKER_ABORT)}}})
    ready = True
except Exception:
    ready = False
channel.send((os.getpid(), ready))
"""


def share(n_items: int, index: int, count: int) -> range:
    """The item indices of slot `index` of `count`: index, index + count, ..."""
    return range(index, n_items, count)


def share_items(seat: dict[str, Any], n_items: int) -> list[int]:
    """The item indices a worker runs, from the share in its workerinput (`SHARE_KEY`)."""
    items = seat.get("items")
    if items is None:
        return list(share(n_items, int(seat["slot"]), int(seat["slots"])))
    return [int(i) for i in items if 0 <= int(i) < n_items]


def worker_input(config: pytest.Config) -> dict[str, Any] | None:
    """A pytest-xdist worker's `workerinput` (what its controller sent it); None in any other process."""
    return getattr(config, "workerinput", None)


def worker_slot(workerinput: dict[str, Any]) -> int:
    """The worker's slot (e.g. its GPU with --gpu-per-worker): a replacement has the one of the worker it replaces."""
    seat = workerinput.get(SHARE_KEY)
    if seat is not None:
        return int(seat["slot"])
    return int(str(workerinput["workerid"]).removeprefix("gw"))


@dataclass
class _Seat:
    """A slot and the items that go with it; a crashed node's seat waits in `vacant` for its replacement."""

    slot: int
    items: list[int] | None  # None: the slot's whole share (the collection was not known when it was given)
    why: str  # why a replacement holds it ("worker gw1 crashed (...)"), for the items nobody runs in the end
    node: Any = None  # the node that crashed


class ShareScheduling:
    """xdist's `Scheduling` protocol: each node's whole share at once, a crashed node's share to its replacement."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.slots = 0  # the number of nodes xdist starts (`pytest_xdist_setupnodes`)
        self.collection: list[str] | None = None
        self.broken = False  # the nodes collected different tests: nothing is scheduled
        self._fresh = 0
        self._seats: dict[WorkerController, _Seat] = {}  # configured nodes still up
        self._vacant: deque[_Seat] = deque()
        self._pending: dict[WorkerController, list[int]] = {}  # added nodes: items sent and not finished
        self._sent: set[WorkerController] = set()
        self._collections: dict[WorkerController, list[str]] = {}
        self._errors: dict[WorkerController, str] = {}  # nodes that went down with an error
        self._lost: list[tuple[int, str, Any]] = []  # items no node will run, why, and the node that had them

    # -- what the controller's hooks tell it -----------------------------------------------------------------

    def configure(self, node: WorkerController) -> dict[str, Any]:
        """The share for a new node's workerinput: a crashed node's slot if one is vacant, else a fresh one."""
        if self._vacant:
            seat = self._vacant.popleft()
        elif self._fresh < self.slots:
            seat = _Seat(self._fresh, None, f"worker {node.gateway.id} stopped before it ran its share")
            self._fresh += 1
        else:  # more nodes than slots: it gets nothing
            seat = _Seat(-1, [], "")
        self._seats[node] = seat
        return {"slot": seat.slot, "slots": self.slots, "items": seat.items}

    def node_down(self, node: WorkerController, error: object | None) -> None:
        if error is not None:
            self._errors[node] = str(error)

    def lost(self) -> list[tuple[str, str, Any]]:
        """(test id, why, node) of every item that no node ran or will run: left by a crash nobody replaced."""
        if self.collection is None:
            return []
        unsent = [seat for node, seat in self._seats.items() if node not in self._sent]
        items = self._lost + [(i, s.why, s.node) for s in [*self._vacant, *unsent] for i in self._items(s)]
        self._vacant.clear()
        self._lost = []
        return [(self.collection[i], why, node) for i, why, node in items]

    # -- the protocol ----------------------------------------------------------------------------------------

    @property
    def nodes(self) -> list[WorkerController]:
        return list(self._pending)

    @property
    def collection_is_completed(self) -> bool:
        return self.slots > 0 and len(self._collections) >= self.slots

    @property
    def tests_finished(self) -> bool:
        if self.broken:
            return True
        if self.collection is None or any(node not in self._sent for node in self._seats):
            return False  # a replacement has not got its items yet
        # A worker holds its last item until it is told what comes next: at most one left means done.
        return all(len(pending) <= 1 for pending in self._pending.values())

    @property
    def has_pending(self) -> bool:
        return any(self._pending.values()) or any(node not in self._sent for node in self._seats)

    def add_node(self, node: WorkerController) -> None:
        assert node not in self._pending
        self._pending[node] = []

    def add_node_collection(self, node: WorkerController, collection: Sequence[str]) -> None:
        collection = list(collection)
        if self.collection is not None and collection != self.collection:
            # A replacement that collected other tests cannot take the slot's items: they are not run.
            seat = self._seats.pop(node, None)
            if seat is not None:
                why = f"worker {node.gateway.id} collected other tests"
                self._lost += [(i, why, node) for i in self._items(seat)]
            node.shutdown()
            return
        self._collections[node] = collection

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.broken:
            return
        if self.collection is None:
            collections = list(self._collections.items())
            first, reference = collections[0]
            different = [node for node, items in collections[1:] if items != reference]
            if different:
                self.broken = True
                names = ", ".join(f"{n.gateway.id}: {len(self._collections[n])}" for n in [first, *different])
                longrepr = f"tir-harness: the workers collected different tests ({names} items)"
                report = pytest.CollectReport(nodeid="", outcome="failed", longrepr=longrepr, result=[])
                self.config.hook.pytest_collectreport(report=report)
                for node in self.nodes:
                    node.shutdown()
                return
            self.collection = reference
        for node in self.nodes:
            if node in self._collections and node not in self._sent:
                self._send(node)

    def mark_test_complete(self, node: WorkerController, item_index: int, duration: float = 0) -> None:
        pending = self._pending.get(node)
        if pending is not None and item_index in pending:
            pending.remove(item_index)

    def mark_test_pending(self, item: str) -> None:
        # From a pytest_handlecrashitem hook (a plugin that reruns crashed tests): the item goes with the slot of
        # the node that just crashed, to its replacement.
        assert self.collection is not None
        index = self.collection.index(item)
        if self._vacant:
            seat = self._vacant[-1]
            seat.items = [*self._items(seat), index]
        else:
            self._lost.append((index, "no worker was left to run it again", None))

    def remove_pending_tests_from_node(self, node: WorkerController, indices: Sequence[int]) -> None:
        raise NotImplementedError("ShareScheduling never steals tests back")

    def remove_node(self, node: WorkerController) -> str | None:
        seat = self._seats.pop(node, None)
        pending = self._pending.pop(node, None)
        error = self._errors.get(node)
        crashed_on = None
        if seat is not None:
            left = seat.items
            if node in self._sent:
                left = list(pending or [])
                if error is not None and left:
                    crashed_on, left = left[0], left[1:]  # xdist reports it failed, naming the crash
            if error is not None or left:
                why = f"worker {node.gateway.id} crashed ({error})" if error is not None else seat.why
                self._vacant.append(_Seat(seat.slot, left, why, node if error is not None else seat.node))
        if pending is None:
            raise KeyError(node)  # never added: xdist expects a KeyError
        if crashed_on is None:
            return None
        assert self.collection is not None
        return self.collection[crashed_on]

    # -- helpers ---------------------------------------------------------------------------------------------

    def _items(self, seat: _Seat) -> list[int]:
        if seat.items is not None:
            return list(seat.items)
        assert self.collection is not None
        return list(share(len(self.collection), seat.slot, self.slots))

    def _send(self, node: WorkerController) -> None:
        seat = self._seats.get(node)
        items = self._items(seat) if seat is not None else []
        self._sent.add(node)
        if items:
            self._pending[node].extend(items)
            node.send_runtest_some(items)
        node.shutdown()  # after its items: everything it will ever run is in its queue


class XdistHooks:
    """The controller's side: the scheduler, each node's workerinput, the signals, and crashed workers' leftovers."""

    def __init__(self) -> None:
        self.sched: ShareScheduling | None = None
        self._pids: dict[WorkerController, int] = {}  # local workers that take the signals passed on
        self._interrupts: Any = None

    @staticmethod
    def _runner(config: pytest.Config) -> Runner | None:
        return config.pluginmanager.get_plugin("tir-harness-runner")  # type: ignore[no-any-return]

    @staticmethod
    def _reporter(config: pytest.Config) -> Reporter | None:
        return config.pluginmanager.get_plugin("tir-harness-reporter")  # type: ignore[no-any-return]

    @classmethod
    def _evaluating(cls, config: pytest.Config) -> bool:
        runner = cls._runner(config)  # its options: the command line's, the environment's, the ini file's
        return runner is not None and bool(runner.options.model or runner.options.server_urls or runner.options.engine)

    def _scheduler(self, config: pytest.Config) -> ShareScheduling | None:
        if self.sched is None and config.getvalue("dist") == "load" and self._evaluating(config):
            self.sched = ShareScheduling(config)
        return self.sched

    def _controlling(self, config: pytest.Config) -> bool:
        return config.pluginmanager.has_plugin("dsession") and self._evaluating(config)

    # -- start-up --------------------------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        config = session.config
        if not self._controlling(config):
            return
        reporter = self._reporter(config)
        if reporter is not None:
            reporter.prepare()  # the run id the workers store their records under is final from here on
        runner = self._runner(config)
        if runner is not None:
            interrupts = runner.interrupts
            interrupts.role, interrupts.forward = "controller", self._forward
            if interrupts.install():
                self._interrupts = interrupts  # from here on, new workers are set up to take the signals passed on
                announce = threading.Thread(target=self._announce, args=(config,), name="tir-harness-signals")
                announce.daemon = True
                announce.start()
            else:  # not pytest's main thread: Python's own signal handling, and xdist's
                interrupts.role, interrupts.forward = "single", None

    def pytest_xdist_setupnodes(self, config: pytest.Config, specs: Sequence[Any]) -> None:
        sched = self._scheduler(config)
        if sched is not None:
            sched.slots = len(specs)

    def pytest_configure_node(self, node: WorkerController) -> None:
        config = node.config
        if not self._evaluating(config):
            return
        reporter = self._reporter(config)
        if reporter is not None:
            node.workerinput[RUN_ID_KEY] = reporter.run_id
        sched = self._scheduler(config)
        if sched is not None:
            node.workerinput[SHARE_KEY] = sched.configure(node)
        spec = node.gateway.spec
        if self._interrupts is not None and spec.popen and not spec.via:
            pid, ready = _worker_setup(node)
            if ready:
                node.workerinput[SIGNALS_KEY] = True
                self._pids[node] = pid
                for stage in range(1, self._interrupts.count + 1):  # signals that came before this worker existed
                    self._forward(stage, [pid])

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        return self._scheduler(config)

    def pytest_testnodedown(self, node: WorkerController, error: object | None) -> None:
        self._pids.pop(node, None)  # its session is over: nothing more to pass on
        if self.sched is not None:
            self.sched.node_down(node, error)

    # -- the end ---------------------------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        result = yield
        # xdist's loop ended without an interrupt: items that a crash left and no replacement took fail here.
        if self.sched is not None:
            for nodeid, why, node in self.sched.lost():
                message = f"tir-harness: not run: {why}; no worker was left to run it"
                _report_failed(session.config, nodeid, message, node)
        return result

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        interrupts = self._interrupts
        if interrupts is None:
            return
        interrupts.closing = True  # a further signal cuts the waits below short instead of raising
        if not interrupts.abort.is_set():
            return
        # Stopped at once: the workers still running were told to stop (each os._exits once its sandboxes are
        # gone); whatever is still up after ABORT_WAIT is killed, so that xdist's teardown does not wait for it.
        deadline = time.monotonic() + ABORT_WAIT
        for node in list(self._pids):
            with contextlib.suppress(Exception):
                node.gateway.join(max(0.0, deadline - time.monotonic()))
        for node, pid in list(self._pids.items()):
            alive = True
            with contextlib.suppress(Exception):
                alive = node.gateway.hasreceiver()
            if alive:
                _signal(pid, signal.SIGKILL)

    # -- signals ---------------------------------------------------------------------------------------------

    def _forward(self, stage: int, pids: list[int] | None = None) -> None:
        # In the signal handler: os.kill only.
        for pid in list(self._pids.values()) if pids is None else pids:
            _signal(pid, WORKER_STOP if stage == 1 else WORKER_ABORT)

    def _announce(self, config: pytest.Config) -> None:
        # Not in the signal handler: a write to the terminal there could land inside another one.
        interrupts = self._interrupts
        interrupts.stopping.wait()
        terminal = config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None and not interrupts.abort.is_set() and not interrupts.closing:
            terminal.ensure_newline()
            terminal.write_line(
                "tir-harness: interrupted: finishing the trajectories in flight (interrupt again to stop at once)",
                yellow=True,
            )


def _worker_setup(node: WorkerController) -> tuple[int, bool]:
    try:
        channel = node.gateway.remote_exec(_WORKER_SETUP)
        pid, ready = channel.receive(SETUP_TIMEOUT)
        channel.waitclose(SETUP_TIMEOUT)
    except Exception:  # an old or odd gateway: this worker keeps Python's own signal handling
        return 0, False
    return int(pid), bool(ready)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signum)


def _report_failed(config: pytest.Config, nodeid: str, message: str, node: Any) -> None:
    # As xdist reports the test a crashed worker was running (DSession.handle_crashitem).
    path = nodeid.split("::")[0]
    report = pytest.TestReport(
        nodeid=nodeid, location=(path, None, path), keywords={}, outcome="failed", longrepr=message, when="call"
    )
    if node is not None:
        report.node = node  # type: ignore[attr-defined]
    config.hook.pytest_runtest_logreport(report=report)
