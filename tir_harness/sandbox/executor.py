"""Run untrusted Python snippets: one live worker per session, hard limits enforced from outside.

    ex = Executor(timeout=10.0, memory_mb=2048, max_output_chars=2000)
    with ex.session() as s:              # one per trajectory; variables live across calls
        obs = s.run("x = 2\\nx + 1")      # Observation(status="ok", text="3", elapsed=..., state_lost=False)
        obs.execution                    # what happened (execution.Execution), before the style rendered it
    ex.close()

A zygote process imports numpy and sympy once and forks a worker per session (`sandbox/worker.py`); the
executor keeps a pool of them forked ahead of demand.  The modules beside this one: `zygote` (the zygote
client and the worker handle), `protocol` (the wire, read as hostile input), `execution` (what happened),
`observations` (the styles that render it for the model), `reference` (the reference's executor, replayed by
`Session.replay`), `isolation` (what the machine offers, the manifest).  Limits, defaults, and what is and is not
isolated: docs/executor.md.  Thread-safe: sessions may run concurrently from many threads; `close()` from
any thread ends every worker promptly.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import importlib.util
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tir_harness.sandbox import isolation as _isolation
from tir_harness.sandbox import observations, protocol, reference
from tir_harness.sandbox.execution import IPYTHON, STOPPED, Error, Execution
from tir_harness.sandbox.observations import STYLES
from tir_harness.sandbox.protocol import execution_of
from tir_harness.sandbox.zygote import Worker, Zygote
from tir_harness.util.registry import RegistryError
from tir_harness.util.text import sanitize

STATUSES = ("ok", "error", "timeout", "memory", "output_limit", "killed")
_CLD_EXITED = 1  # si_code of a child that called exit (os.CLD_EXITED is missing on some builds)
# An idle live session holds about 3.9 MB that only it holds (USS; benchmarks/perf/sessions.py, 1 to 1,024 at
# once): 8 MB leaves room for what a model's code keeps in it.  Fewer sessions than MIN_SESSIONS would hold
# back even a small run, and the memory budget (idle sessions' growth) still guards a small machine.
SESSION_BYTES = 8 * 2**20
MIN_SESSIONS = 64
_READY_TIMEOUT = 120.0  # importing numpy and sympy on a loaded machine
_EXIT_WAIT = 2.0  # how long a failed call waits for the zygote to confirm the worker is gone
_WATCH_INTERVAL = 0.5  # seconds between two CPU checks of every worker
_IDLE_CPU_NS = 20_000_000  # CPU an idle session may use before it is frozen until its next call


@dataclass(frozen=True)
class ExecutorConfig:
    """Every limit and option of an `Executor` (plain builtins: hashed and recorded by the harness)."""

    timeout: float = 10.0  # wall-clock seconds per run() call, enforced by the harness with SIGKILL
    memory_mb: int = 2048  # memory a session may add: its memory cgroup (all processes), and RLIMIT_AS each
    cpu_seconds: int = 20  # CPU seconds per run() call, every process and thread of the session
    max_output_chars: int = 2000  # characters the model sees; head and tail are kept when cut
    max_processes: int = 64  # processes + threads the snippet may add (pids cgroup or RLIMIT_NPROC)
    file_size_mb: int = 64  # largest file the snippet may write (RLIMIT_FSIZE)
    max_open_files: int = 1024  # RLIMIT_NOFILE
    disk_mb: int = 256  # size of the session's private tmpfs (/tmp, /dev/shm, the working directory)
    max_files: int = 16384  # inodes (files, directories, hard links) of that tmpfs
    network: bool = False  # False: a network namespace without interfaces, where the machine allows it
    replay_on_restart: bool = False  # re-run the session's successful cells in a replacement worker
    observation_style: str = "full"  # a registered style (observations.STYLES): "full", "reference", ...
    replay_timeout: float = reference.REPLAY_SECONDS  # wall-clock seconds per Session.replay(), every cell
    warm_workers: int = 2  # workers kept forked ahead of demand at least
    max_warm_workers: int = 32  # at most: the pool grows to half the sessions open, up to this many
    # Workers alive at once; None: from the machine's memory when the executor starts (`session_limit`).  Beyond
    # it a new session takes the least recently used idle session's worker (run/driver.py never lets it).
    max_workers: int | None = None
    memory_budget_mb: int = 0  # memory idle sessions may hold in total before eviction; 0: half of RAM
    preload: tuple[str, ...] = ("math", "numpy", "sympy")  # imported once by the zygote
    isolation: str = "auto"  # "auto": strongest available; "basic": process group and rlimits only

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                raise ValueError(f"ExecutorConfig.{name} must be {rule}, got {getattr(self, name)!r}")

        need(self.timeout > 0, "timeout", "> 0")
        need(self.memory_mb >= 16, "memory_mb", ">= 16")
        need(self.cpu_seconds >= 1, "cpu_seconds", ">= 1")
        need(self.max_output_chars >= 20, "max_output_chars", ">= 20")
        need(self.max_processes >= 1, "max_processes", ">= 1")
        need(self.file_size_mb >= 1, "file_size_mb", ">= 1")
        need(self.max_open_files >= 16, "max_open_files", ">= 16")
        need(self.disk_mb >= 1, "disk_mb", ">= 1")
        need(self.max_files >= 64, "max_files", ">= 64")
        try:
            known = self.observation_style in STYLES
        except RegistryError as exc:  # a broken third-party style: its own one-line message
            raise ValueError(f"ExecutorConfig.observation_style: {exc}") from None
        need(known, "observation_style", f"one of {', '.join(STYLES.names())}")
        need(self.replay_timeout > 0, "replay_timeout", "> 0")
        need(self.warm_workers >= 0, "warm_workers", ">= 0")
        need(self.max_warm_workers >= self.warm_workers, "max_warm_workers", ">= warm_workers")
        need(
            self.max_workers is None or 1 <= self.max_workers <= _isolation.UID_BLOCK,
            "max_workers",
            f"None or in 1..{_isolation.UID_BLOCK}",
        )
        need(self.memory_budget_mb >= 0, "memory_budget_mb", ">= 0")
        need(isinstance(self.preload, tuple), "preload", "a tuple of module names")
        need(self.isolation in ("auto", "basic"), "isolation", "'auto' or 'basic'")


@dataclass(frozen=True)
class Observation:
    status: str  # one of STATUSES
    text: str  # what the model sees: `execution` rendered in the configured observation style
    elapsed: float  # seconds the snippet ran (kill included), replays excluded
    state_lost: bool = False  # variables from earlier calls are not available after this call
    execution: Execution | None = None  # what happened (None: the session or executor was closed)


class ExecutorClosed(RuntimeError):
    pass


class Lease:
    """What the executor keeps of one session: its worker, if it has one, and whether it is closed.
    Only the executor changes it (under its lock); a session holds it and asks the executor."""

    __slots__ = ("__weakref__", "closed", "waiting", "worker")

    def __init__(self) -> None:
        self.worker: Worker | None = None
        self.closed = False
        self.waiting: threading.Event | None = None  # set while a run() waits for a worker to be spawned


# ------------------------------------------------------------------------------------------ executor

_LIVE_EXECUTORS: weakref.WeakSet[Executor] = weakref.WeakSet()
_COUNTER = itertools.count()


def _close_all() -> None:
    for ex in list(_LIVE_EXECUTORS):
        ex.close()


atexit.register(_close_all)


class Executor:
    """A pool of sandboxed Python workers; `session()` gives each trajectory its own live one."""

    def __init__(self, config: ExecutorConfig | None = None, **options: Any) -> None:
        known = {f.name for f in dataclasses.fields(ExecutorConfig)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"Executor: unknown option(s) {unknown}; known: {sorted(known)}")
        self.config = dataclasses.replace(config or ExecutorConfig(), **options)
        if self.config.max_workers is None:
            self.config = dataclasses.replace(self.config, max_workers=session_limit(_available_memory()))
        cfg = self.config
        self.max_workers: int = cfg.max_workers  # type: ignore[assignment]  # resolved just above
        self.style = observations.get_style(cfg.observation_style)
        replays = self.style.mode == "reference"  # its sessions replay in IPython: the zygote loads it
        if replays and importlib.util.find_spec("IPython") is None:
            raise RuntimeError(
                f"observation style {cfg.observation_style!r} replays code in IPython, which this Python cannot"
                " import (pip install 'ipython>=8.18,<9')"
            )
        self._index = next(_COUNTER)
        self._lock = threading.Condition()
        self._closed = False
        self._warm: list[Worker] = []
        # Idle workers in least-recently-used order, with their leases.
        self._idle: collections.OrderedDict[Worker, Lease] = collections.OrderedDict()
        self._live: dict[int, Worker] = {}
        # Spawn requests in flight: request id -> (socket, slot, name, box); box None: for the warm pool.
        self._pending: dict[int, tuple[socket.socket, int, str, dict | None]] = {}
        self._starting = 0
        self._warm_starting = 0
        self._dying: set[Worker] = set()  # killed, still counted in _live until the zygote reports its end
        self._open_sessions = 0
        self._free_slots = list(range(self.max_workers - 1, -1, -1))
        self._spawn_error = ""
        self._names = itertools.count()
        self._budget = cfg.memory_budget_mb * 2**20 or _available_memory() // 2
        self._base_dir = tempfile.mkdtemp(prefix="tir-exec-")
        os.chmod(self._base_dir, 0o711)  # workers (other uids) reach their own subdirectory only
        basic = cfg.isolation == "basic"
        self._cgroups = {} if basic else _isolation.make_cgroups(str(self._index))
        self._owner = os.getpid()
        bindir = os.path.dirname(sys.executable)
        self._zygote_config = {
            "namespaces": not basic,
            "network": cfg.network,
            "preload": list(cfg.preload) + (["IPython"] if replays and "IPython" not in cfg.preload else []),
            "reference_shell": replays,
            "env": {
                "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
                "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8",
                "PYTHONHASHSEED": "0",  # the same set/dict orders in every run: reproducible snippets
                "PYTHONDONTWRITEBYTECODE": "1",
                "OMP_NUM_THREADS": "1",  # one core per snippet, and a single-threaded zygote to fork
                "OPENBLAS_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
                "NUMEXPR_NUM_THREADS": "1",
                "MPLBACKEND": "Agg",
            },
            "cpu_seconds": cfg.cpu_seconds,
            "memory_mb": cfg.memory_mb,
            "file_size_mb": cfg.file_size_mb,
            "max_open_files": cfg.max_open_files,
            "disk_mb": cfg.disk_mb,
            "max_files": cfg.max_files,
            "max_processes": cfg.max_processes + 2,  # W1 and W2 themselves count
            "max_output_chars": cfg.max_output_chars,
            "abort_output_chars": max(100_000, 50 * cfg.max_output_chars),
            "uid_base": _isolation.uid_base(self._index) if os.geteuid() == 0 and not basic else None,
            "cgroups": self._cgroups,
            "base_dir": self._base_dir,
        }
        try:
            self._zygote = self._start_zygote()
        except BaseException:
            self._remove_files()
            raise
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="tir-executor-cpu", daemon=True)
        self._watchdog.start()
        _LIVE_EXECUTORS.add(self)
        with self._lock:
            self._refill()

    # -- public

    def session(self) -> Session:
        if self._closed:
            raise ExecutorClosed("Executor.session(): the executor is closed")
        if os.getpid() != self._owner:
            raise RuntimeError("Executor.session(): an Executor cannot be used after fork(); make one per process")
        lease = Lease()
        with self._lock:
            self._open_sessions += 1
            self._refill()
        session = Session(self, lease)
        weakref.finalize(session, self.release, lease)
        return session

    @property
    def isolation(self) -> dict:
        """Which isolation mechanisms are in force (plain builtins, for the run manifest)."""
        return _isolation.summary(self._zygote_config, self._wait_ready() or {})

    def close(self) -> None:
        """Kill every worker and the zygote, remove the temporary directories.  Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self._live.values())
            for _, _, _, box in self._pending.values():  # run() calls waiting for a worker give up
                if box is not None:
                    box["event"].set()
            self._lock.notify_all()
        if os.getpid() != self._owner:
            return  # a forked copy: the zygote and the workers belong to the parent process
        self._stop.set()
        for w in workers:
            _shutdown(w.sock)
        self._zygote.close()
        self._watchdog.join()
        with self._lock:
            workers += [w for w in self._live.values() if w not in workers]  # spawned meanwhile
        for w in workers:  # the zygote confirmed their end; only a lost zygote leaves work here
            if not w.exited.is_set():
                w.kill_if_same()
            if not w.busy:
                w.sock.close()
        self._remove_files()
        _LIVE_EXECUTORS.discard(self)

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what a session asks for (each takes the session's lease)

    def checkout(self, lease: Lease) -> tuple[Worker | None, bool]:
        """The lease's worker, marked busy: its own if alive (False), else a new one (True).
        (None, True) if the session or the executor was closed meanwhile: every wait here ends then."""
        if self._wait_ready(lease) is None:
            return None, True
        with self._lock:
            while True:
                if self._closed or lease.closed:
                    return None, True
                worker = lease.worker
                if worker is not None and not worker.exited.is_set():
                    self._idle.pop(worker, None)
                    worker.busy = True
                    if worker.frozen:
                        worker.freeze(False)
                    return worker, False
                if worker is not None:
                    self._detach(lease)
                if self._warm:
                    worker = self._warm.pop()
                    break
                if len(self._live) + self._starting < self.max_workers and self._free_slots:
                    # An event of its own: _on_spawned wakes this run() alone; release() and close() too.
                    box: dict = {"event": threading.Event()}
                    self._request(box)
                    lease.waiting = box["event"]
                    self._lock.release()
                    try:
                        box["event"].wait()
                    finally:
                        self._lock.acquire()
                        lease.waiting = None
                    worker = box.get("worker")
                    if self._closed or lease.closed:
                        if "worker" not in box:  # the worker, when it comes, goes to the pool
                            box["abandoned"] = True
                        elif worker is not None:
                            self._give_back(worker)
                        return None, True
                    if worker is None:
                        if self._closed or lease.closed:
                            return None, True
                        raise RuntimeError(f"the executor cannot start a worker: {self._spawn_error}")
                    if worker.exited.is_set():
                        continue
                    break
                if self._idle and not self._dying and not self._warm_starting:
                    # At capacity: the least recently used idle session loses its worker.  Not while a worker
                    # is ending (a closed session's) or one is being forked for the pool: that room is coming,
                    # and taking a live session's worker instead would lose its variables for nothing.
                    self._evict(next(iter(self._idle)))
                self._lock.wait(0.5)
            worker.busy = True
            if worker.frozen:
                worker.freeze(False)
            lease.worker = worker
            self._refill()
            return worker, True

    def checkin(self, lease: Lease, worker: Worker) -> None:
        """The call is over: the worker becomes idle, or is dropped; idle memory is kept in budget."""
        growth = worker.memory()
        worker.cpu_mark = worker.cpu() or worker.cpu_mark
        with self._lock:
            worker.busy = False
            worker.growth = growth
            if lease.worker is not worker:
                return
            if worker.exited.is_set() or self._closed or lease.closed:
                self._detach(lease)
                return
            self._idle[worker] = lease
            self._fit_budget()

    def _fit_budget(self) -> None:
        """Evict the largest idle sessions until the memory idle sessions hold is within budget (lock held)."""
        total = sum(w.growth for w in self._idle)
        if total > self._budget:
            for victim in sorted(self._idle, key=lambda w: -w.growth):
                if total <= self._budget:
                    break
                total -= victim.growth
                self._evict(victim)

    def release(self, lease: Lease) -> None:
        """The session is closed (or was dropped): its worker goes, without waiting for it to end."""
        with self._lock:
            if lease.closed:
                return
            lease.closed = True
            self._open_sessions -= 1
            if lease.waiting is not None:  # a run() of this session waiting for a worker gives up
                lease.waiting.set()
            self._lock.notify_all()  # or waiting for the zygote, or for room
            worker = lease.worker
            if worker is not None:
                self._idle.pop(worker, None)
                if worker.busy:  # a run() in another thread: kill it, that thread cleans up
                    if self._live.get(worker.pid1) is worker:
                        self._dying.add(worker)
                    self._zygote.kill(worker.pid1)
                    _shutdown(worker.sock)
                else:
                    self._detach(lease)

    def start_call(self, worker: Worker) -> None:
        """A call begins: it may use `cpu_seconds` of CPU from now on."""
        worker.cpu_mark = worker.cpu() or worker.cpu_mark

    def retire(self, lease: Lease, worker: Worker) -> None:
        """The call is over and the worker must not run anything again (a replay's shell): it goes, without
        waiting for it to end; the lease's next checkout gets a fresh one."""
        with self._lock:
            worker.busy = False
            if lease.worker is worker:
                self._detach(lease)
            self._refill()

    def end_worker(self, worker: Worker) -> None:
        """A failed call: make sure the worker is dead before the session moves on."""
        self._zygote.kill(worker.pid1)
        if not worker.exited.wait(_EXIT_WAIT):
            worker.kill_if_same()
            worker.exited.wait(_EXIT_WAIT)

    @property
    def abort_output_chars(self) -> int:
        return self._zygote_config["abort_output_chars"]

    @property
    def closed(self) -> bool:
        return self._closed

    # -- pool

    def _detach(self, lease: Lease) -> None:
        """Drop the lease's worker (lock held)."""
        worker, lease.worker = lease.worker, None
        if worker is not None:
            self._discard(worker)

    def _evict(self, worker: Worker) -> None:
        """Take an idle worker from its session (lock held); the session restarts on its next call."""
        self._detach(self._idle.pop(worker))

    def _discard(self, worker: Worker) -> None:
        """Kill a worker no session will use again; the zygote does the work, off this thread's path."""
        if self._live.get(worker.pid1) is worker:
            self._dying.add(worker)
        self._zygote.kill(worker.pid1)
        _shutdown(worker.sock)
        if not worker.busy:
            worker.sock.close()

    def _remove_files(self) -> None:
        for path in self._cgroups.values():
            if path:
                _isolation.kill_and_remove(path)
        shutil.rmtree(self._base_dir, ignore_errors=True)
        if os.path.exists(self._base_dir):  # e.g. a directory tree too deep for rmtree's recursion
            subprocess.run(["rm", "-rf", "--one-file-system", self._base_dir], check=False)

    def _start_zygote(self) -> Zygote:
        return Zygote(
            self._zygote_config, self._base_dir, self._on_spawned, self._on_exit, self._on_dead, self._on_ready
        )

    def _wait_ready(self, lease: Lease | None = None) -> dict | None:
        """The zygote's facts once it is ready; None if the lease (given one) or the executor is closed first."""
        zygote = self._zygote
        deadline = time.monotonic() + _READY_TIMEOUT

        def closed() -> bool:
            return self._closed or (lease is not None and lease.closed)

        with self._lock:
            while not zygote.ready.is_set() and not closed():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(remaining)  # _on_ready, release() and close() notify
            if lease is not None and closed():
                return None
        if not zygote.ready.is_set() or zygote.facts is None:
            if self._closed:
                raise ExecutorClosed("the executor was closed before its zygote started")
            raise RuntimeError(f"the executor's zygote did not start: {zygote.log_tail() or 'no output'}")
        return zygote.facts

    def _on_ready(self) -> None:
        with self._lock:
            self._lock.notify_all()

    def _on_dead(self) -> None:
        """The zygote died (it never should): its workers are orphans now; a new zygote starts on demand."""
        with self._lock:
            workers = list(self._live.values())
            pending = list(self._pending.items())
            self._lock.notify_all()
        for w in workers:
            w.kill_if_same()
            self._on_exit({"pid": w.pid1, "code": 9, "why": 2})
        for request_id, _ in pending:
            self._on_spawned(request_id, {"error": "the zygote died"})

    def _on_spawned(self, request_id: int, msg: dict) -> None:
        with self._lock:
            entry = self._pending.pop(request_id, None)
            if entry is None:
                return
            sock, slot, name, box = entry
            self._starting -= 1
            worker = None
            if "error" in msg:
                self._spawn_error = str(msg["error"])
                self._free_slots.append(slot)
                sock.close()
            else:
                cgroups = {c: os.path.join(p, name) for c, p in self._cgroups.items() if p}
                cgroups = {c: p for c, p in cgroups.items() if c in (self._zygote.facts or {}).get("cgroups", [])}
                worker = Worker(int(msg["pid1"]), int(msg["pid2"]), sock, slot, cgroups)
                self._live[worker.pid1] = worker
            if box is None or box.get("abandoned"):  # for the pool (a session closed while waiting: also)
                if box is None:
                    self._warm_starting -= 1
                if worker is not None:
                    self._give_back(worker)
                self._refill()
            else:
                box["worker"] = worker
                box["event"].set()
            self._lock.notify_all()

    def _give_back(self, worker: Worker) -> None:
        """A fresh worker no session took: into the pool (lock held)."""
        if self._live.get(worker.pid1) is not worker:  # it ended meanwhile (_on_exit took it out)
            worker.sock.close()
        elif self._closed:
            self._discard(worker)
        else:
            self._warm.append(worker)

    def _on_exit(self, msg: dict) -> None:
        with self._lock:
            worker = self._live.pop(msg["pid"], None)
            if worker is None:
                return
            self._dying.discard(worker)
            worker.exit = msg
            self._free_slots.append(worker.slot)
            if worker in self._warm:
                self._warm.remove(worker)
                worker.sock.close()
            self._idle.pop(worker, None)
            self._lock.notify_all()
        worker.exited.set()
        _shutdown(worker.sock)  # wakes a run() blocked on this worker

    def _request(self, box: dict | None) -> None:
        """Send a spawn request (lock held); its worker goes into `box["worker"]`, or to the pool if None."""
        if self._zygote.dead and not self._closed:
            self._zygote.close(timeout=1.0, join=False)  # its reader thread may be waiting for our lock
            self._zygote = self._start_zygote()
        slot = self._free_slots.pop()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        name = f"w{next(self._names)}"
        spec = {"name": name, "uid": (self._zygote_config["uid_base"] or 0) + slot}
        self._starting += 1
        request_id = self._zygote.spawn(spec, theirs.fileno())
        theirs.close()
        if request_id is None:
            self._starting -= 1
            self._free_slots.append(slot)
            mine.close()
            if box is not None:
                box["worker"] = None
                box["event"].set()
            return
        self._pending[request_id] = (mine, slot, name, box)

    def _refill(self) -> None:
        """Keep workers forked ahead of demand (lock held): at least `warm_workers`, and up to half the
        sessions open (a trajectory's next session is then ready when it asks), at most `max_warm_workers`."""
        cfg = self.config
        # Demand never takes room that open sessions may need: only workers beyond one per session.
        demand = min(self._open_sessions // 2, self.max_workers - self._open_sessions)
        target = min(cfg.max_warm_workers, max(cfg.warm_workers, demand))
        while (
            not self._closed
            and len(self._warm) + self._warm_starting < target
            and len(self._live) + self._starting < self.max_workers
            and self._free_slots
            and not self._zygote.dead
        ):
            self._warm_starting += 1
            self._request(None)

    def _watch(self) -> None:
        """Every 0.5 s: kill sessions over their CPU budget (a call's processes and threads, or what keeps
        running between calls); freeze an idle session that keeps computing until its next call; measure
        what idle sessions hold (their children and files included: what they allocate after a call ends
        counts) and evict the largest ones while the total is over the memory budget."""
        budget = self.config.cpu_seconds * 1_000_000_000
        while not self._stop.wait(_WATCH_INTERVAL):
            with self._lock:
                workers = list(self._live.values())
            held: dict[Worker, int] = {}
            for worker in workers:
                used = worker.cpu()
                if used is None:
                    continue
                if used - worker.cpu_mark > budget:
                    worker.cpu_exceeded = True
                    self._zygote.kill(worker.pid1)
                    continue
                with self._lock:
                    idle = worker in self._idle and not worker.busy
                    if idle and not worker.frozen and used - worker.cpu_mark > _IDLE_CPU_NS:
                        worker.freeze(True)
                if idle:
                    held[worker] = worker.memory()
            if held:
                with self._lock:
                    for worker, growth in held.items():
                        if worker in self._idle and not worker.busy:
                            worker.growth = growth
                    self._fit_budget()


def session_limit(available_bytes: int) -> int:
    """Live sessions at once for a machine with `available_bytes` of memory available: half of it at
    `SESSION_BYTES` each, within [MIN_SESSIONS, UID_BLOCK] (one uid per live worker)."""
    return max(MIN_SESSIONS, min(_isolation.UID_BLOCK, available_bytes // 2 // SESSION_BYTES))


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


# ------------------------------------------------------------------------------------------ session


class Session:
    """One trajectory's Python: variables live across `run()` calls.  Use one thread at a time per
    session (calls on one session are serialized); sessions are independent of each other."""

    def __init__(self, executor: Executor, lease: Lease) -> None:
        self._executor = executor
        self._lease = lease
        self._run_lock = threading.Lock()
        self._calls = 0
        self._state_in_worker = False  # a call has run in the current worker
        self._pending_loss = False  # a reported loss of state not yet made good (replay, or a new call)
        self._history: list[str] = []  # completed cells, kept for replay_on_restart

    @property
    def _worker(self) -> Worker | None:
        return self._lease.worker

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._executor.release(self._lease)

    def run(self, code: str) -> Observation:
        """Run one snippet; never raises for anything the snippet does."""
        if not isinstance(code, str):
            raise TypeError(f"Session.run: code must be a str, got {type(code).__name__}")
        with self._run_lock:
            if self._lease.closed or self._executor.closed:
                raise ExecutorClosed("Session.run(): the session or its executor is closed")
            return self._run(code)

    def replay(self, blocks: Sequence[str]) -> Observation:
        """Run every code block of a conversation as the reference's executor did (sandbox/reference.py):
        in a fresh worker and a fresh IPython shell, within `replay_timeout` for all of them; the observation
        is the last block's.  Needs a style of mode "reference" (the zygote then loads IPython); never raises
        for anything the code does.  The session's live variables (from run()) are not touched by it."""
        blocks = list(blocks)
        if not all(isinstance(b, str) for b in blocks):
            raise TypeError("Session.replay: blocks must be strs")
        if self._executor.style.mode != "reference":
            raise RuntimeError(
                f"Session.replay(): observation style {self._executor.config.observation_style!r} runs code live;"
                " a replay needs a style of mode 'reference'"
            )
        with self._run_lock:
            if self._lease.closed or self._executor.closed:
                raise ExecutorClosed("Session.replay(): the session or its executor is closed")
            return self._replay_blocks(blocks)

    def _closed_observation(self, elapsed: float) -> Observation:
        what = "executor" if self._executor.closed else "session"
        return Observation("killed", f"RuntimeError: the {what} was closed", elapsed, True)

    def _observation(self, execution: Execution) -> Observation:
        cfg = self._executor.config
        text = sanitize(self._executor.style.render(execution, cfg.max_output_chars))
        return Observation(execution.status, text, execution.elapsed, execution.state_lost, execution)

    def _run(self, code: str) -> Observation:
        ex, cfg = self._executor, self._executor.config
        worker, fresh = ex.checkout(self._lease)
        if worker is None:
            return self._closed_observation(0.0)
        # A worker that vanished between calls (evicted, or died idle) has not been reported yet.
        unreported = fresh and self._state_in_worker
        lost = fresh and (self._state_in_worker or self._pending_loss)
        if lost and cfg.replay_on_restart and self._history:
            worker, lost = self._replay(worker)
            if worker is None:
                return self._closed_observation(0.0)
        if lost:
            self._history = []
        restarted = lost and unreported
        self._pending_loss = False
        self._calls += 1
        start = time.monotonic()
        reply, failure = self._exchange(worker, code, self._calls)
        if reply is not None:
            elapsed = time.monotonic() - start
            ex.checkin(self._lease, worker)
            self._state_in_worker = True
            if reply["completed"] and cfg.replay_on_restart:
                self._history.append(code)
            execution = execution_of(reply, cfg.max_output_chars, ex.abort_output_chars)
            facts = {"elapsed": elapsed, "state_lost": lost, "restarted": restarted}
            return self._observation(dataclasses.replace(execution, restores_state=cfg.replay_on_restart, **facts))
        status, kind, message = self._failure(worker, failure, cfg.timeout)
        elapsed = time.monotonic() - start
        ex.checkin(self._lease, worker)
        self._state_in_worker, self._pending_loss = False, True
        if ex.closed or self._lease.closed:
            return self._closed_observation(elapsed)
        return self._observation(
            Execution(
                status,
                error=Error(kind, message, STOPPED, last_line=f"{kind}: {message}"),
                completed=False,
                elapsed=elapsed,
                state_lost=True,
                restarted=restarted,
                restores_state=cfg.replay_on_restart,
            )
        )

    def _replay_blocks(self, blocks: list[str]) -> Observation:
        ex, cfg = self._executor, self._executor.config
        worker, fresh = ex.checkout(self._lease)
        if worker is not None and not fresh:  # it ran this session's code before: the replay needs a fresh one
            ex.retire(self._lease, worker)
            worker, fresh = ex.checkout(self._lease)
        if worker is None:
            return self._closed_observation(0.0)
        self._pending_loss = self._pending_loss or self._state_in_worker
        self._state_in_worker = False
        self._calls += 1
        start = time.monotonic()
        reply, failure = self._send(worker, "replay", blocks, self._calls, cfg.replay_timeout)
        elapsed = time.monotonic() - start
        if reply is not None:
            ex.retire(self._lease, worker)  # its interpreter ran a whole conversation: never used again
            execution = execution_of(reply, cfg.max_output_chars, ex.abort_output_chars)
            return self._observation(dataclasses.replace(execution, elapsed=elapsed, shell=IPYTHON))
        status, kind, message = self._failure(worker, failure, cfg.replay_timeout)
        elapsed = time.monotonic() - start
        ex.checkin(self._lease, worker)
        if ex.closed or self._lease.closed:
            return self._closed_observation(elapsed)
        error = Error(kind, message, STOPPED, last_line=f"{kind}: {message}")
        return self._observation(
            Execution(status, error=error, completed=False, elapsed=elapsed, shell=IPYTHON, cells=len(blocks))
        )

    def _replay(self, worker: Worker) -> tuple[Worker | None, bool]:
        """Re-run the completed cells in a new worker: (worker to use, state still lost)."""
        for code in self._history:
            self._calls += 1
            reply, failure = self._exchange(worker, code, self._calls)
            if reply is None:
                self._failure(worker, failure, self._executor.config.timeout)
                self._executor.checkin(self._lease, worker)
                return self._executor.checkout(self._lease)[0], True
            if not reply["completed"]:
                return worker, True
        return worker, False

    def _exchange(self, worker: Worker, code: str, n: int) -> tuple[dict | None, str]:
        """Run one cell live: `_send` within the per-call timeout."""
        return self._send(worker, "run", [code], n, self._executor.config.timeout)

    def _send(self, worker: Worker, kind: str, texts: list[str], n: int, timeout: float) -> tuple[dict | None, str]:
        """Send one request (a cell to run, or blocks to replay) and read its reply within `timeout`: (reply, "")
        or (None, "timeout" | "eof" | "oversize" | "garbage").  Whatever the worker sends, this returns."""
        cfg = self._executor.config
        limit = cfg.max_output_chars
        self._executor.start_call(worker)
        nonce = protocol.new_nonce()
        sock = worker.sock
        deadline = time.monotonic() + timeout
        try:
            if not protocol.drain(sock):  # a reply written ahead of this call is not its answer
                return None, "eof"
            sock.settimeout(timeout)
            sock.sendall(protocol.encode_request(nonce, n, kind, texts))
            (length,) = protocol.HEADER.unpack(protocol.recv_exact(sock, protocol.HEADER.size, deadline))
            if length > protocol.max_reply_bytes(limit):
                return None, "oversize"
            body = protocol.recv_exact(sock, length, deadline)
        except TimeoutError:
            return None, "timeout"
        except OSError:
            return None, "eof"
        try:
            reply = protocol.decode_reply(body, nonce, n, limit)
        except Exception:  # decode_reply is bounded and flat; this is a last guard for the harness
            reply = None
        return (reply, "") if reply is not None else (None, "garbage")

    def _failure(self, worker: Worker, failure: str, timeout: float) -> tuple[str, str, str]:
        """The worker is lost: make sure it is dead, and say why: (status, exception type, message)."""
        cfg = self._executor.config
        if failure == "eof":
            if worker.hung_up():  # alive, and closed its end of the socket: nothing to wait for
                failure = "hung_up"
            else:
                worker.exited.wait(_EXIT_WAIT)  # the zygote's exit report says how it ended
        self._executor.end_worker(worker)
        if failure == "timeout":
            return "timeout", "TimeoutError", f"the code did not finish within {timeout:g} s and was stopped"
        if failure == "oversize":
            return "output_limit", "RuntimeError", "the Python process sent too much output and was stopped"
        if failure == "garbage":
            return "killed", "RuntimeError", "the Python process broke the executor's protocol and was stopped"
        if failure == "hung_up":
            return "killed", "RuntimeError", "the Python process closed its connection to the executor and was stopped"
        info = worker.exit or {}
        code = info.get("code", -1)
        signum = info.get("signal", 0)  # the signal that killed the Python process, if one did
        if worker.cpu_exceeded or signum == signal.SIGXCPU:  # the watchdog, or RLIMIT_CPU as its backstop
            return "timeout", "TimeoutError", f"the code used more than {cfg.cpu_seconds} s of CPU time"
        if worker.oom_killed():
            return (
                "memory",
                "MemoryError",
                f"the session used more than its {cfg.memory_mb} MB of memory"
                " (all its processes, files and shared memory together) and was stopped",
            )
        if info.get("why") != _CLD_EXITED:
            return "killed", "RuntimeError", "the Python process was killed"
        if signum:
            try:
                name = signal.Signals(signum).name
            except ValueError:
                name = f"signal {signum}"
            return "killed", "RuntimeError", f"the Python process died ({name})"
        return "killed", "RuntimeError", f"the Python process exited (code {code})"
