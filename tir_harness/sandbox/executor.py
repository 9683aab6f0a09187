"""Run untrusted Python snippets: one live worker per session, hard limits enforced from outside.

    ex = Executor(timeout=10.0, memory_mb=2048, max_output_chars=2000)
    with ex.session() as s:              # one per trajectory; variables live across calls
        obs = s.run("x = 2\\nx + 1")      # Observation(status="ok", text="3", elapsed=..., state_lost=False)
    ex.close()

A zygote process imports numpy and sympy once and forks a worker per session (`sandbox/worker.py`).
Limits, defaults, and what is and is not isolated: docs/executor.md.  Thread-safe: sessions may run
concurrently from many threads; `close()` from any thread ends every worker promptly.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import itertools
import json
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tir_harness.sandbox import isolation as _isolation
from tir_harness.util.text import sanitize

STATUSES = ("ok", "error", "timeout", "memory", "output_limit", "killed")
STYLES = ("full", "reference")
_WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
_HEADER = struct.Struct("!I")
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = resource.getpagesize()
_CLD_EXITED = 1  # si_code of a child that called exit (os.CLD_EXITED is missing on some builds)
_READY_TIMEOUT = 120.0  # importing numpy and sympy on a loaded machine
_EXIT_WAIT = 2.0  # how long a failed call waits for the zygote to confirm the worker is gone
_WATCH_INTERVAL = 0.5  # seconds between two CPU checks of every worker


@dataclass(frozen=True)
class ExecutorConfig:
    """Every limit and option of an `Executor` (plain builtins: hashed and recorded by the harness)."""

    timeout: float = 10.0  # wall-clock seconds per run() call, enforced by the harness with SIGKILL
    memory_mb: int = 2048  # address space a snippet may add to its worker (RLIMIT_AS)
    cpu_seconds: int = 20  # CPU seconds per run() call, all threads of the worker (RLIMIT_CPU)
    max_output_chars: int = 2000  # characters the model sees; head and tail are kept when cut
    max_processes: int = 64  # processes + threads the snippet may add (pids cgroup or RLIMIT_NPROC)
    file_size_mb: int = 64  # largest file the snippet may write (RLIMIT_FSIZE)
    max_open_files: int = 1024  # RLIMIT_NOFILE
    network: bool = False  # False: a network namespace without interfaces, where the machine allows it
    replay_on_restart: bool = False  # re-run the session's successful cells in a replacement worker
    observation_style: str = "full"  # "full": IPython-like; "reference": the reference's (docs/fidelity.md)
    warm_workers: int = 2  # workers forked ahead of demand, so a new session does not wait for a fork
    max_workers: int = 256  # workers alive at once; beyond that the least recently used idle one goes
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
        need(self.observation_style in STYLES, "observation_style", f"one of {STYLES}")
        need(self.warm_workers >= 0, "warm_workers", ">= 0")
        need(1 <= self.max_workers <= _isolation.UID_BLOCK, "max_workers", f"in 1..{_isolation.UID_BLOCK}")
        need(self.memory_budget_mb >= 0, "memory_budget_mb", ">= 0")
        need(isinstance(self.preload, tuple), "preload", "a tuple of module names")
        need(self.isolation in ("auto", "basic"), "isolation", "'auto' or 'basic'")


@dataclass(frozen=True)
class Observation:
    status: str  # one of STATUSES
    text: str  # what the model sees
    elapsed: float  # seconds the snippet ran (kill included), replays excluded
    state_lost: bool = False  # variables from earlier calls are not available after this call


class ExecutorClosed(RuntimeError):
    pass


# ------------------------------------------------------------------------------------------ rendering

_MARK = "\n[... {} characters cut ...]\n"
_NOTE_LOST = "[The Python session was restarted: variables from earlier cells are lost.]"
_REFERENCE_EMPTY = "Result is not defined"
_REFERENCE_TIMEOUT = "Timeout Error"


def _render(piece: list, budget: int, keep_tail: bool = False) -> str:
    """Text of a [head, tail, total] piece (the first and last characters of a text of `total`
    characters, see worker.Capture) in at most `budget` characters plus a cut marker."""
    head, tail, total = piece
    whole = head + tail if total == len(head) + len(tail) else None
    if total <= budget and whole is not None:
        return whole
    end = whole if whole is not None else tail
    if keep_tail:
        return _MARK.format(total - budget).lstrip("\n") + end[len(end) - budget :]
    first, last = budget // 2, budget - budget // 2
    return head[:first] + _MARK.format(total - first - last) + (end[-last:] if last else "")


def _join(texts: list[str]) -> str:
    out = ""
    for text in texts:
        out += text if not out or out.endswith("\n") else "\n" + text
    return out.rstrip("\n")


def _compose(reply: dict, limit: int, style: str, abort: int) -> str:
    stopped = reply["status"] == "output_limit" and not reply["completed"]
    tail = [f"OutputLimitError: more than {abort} characters of output; the code was stopped"] if stopped else []
    if style == "reference":
        # The reference's (an IPython shell): the error's last line; else output and the final expression's
        # display, stripped; `Result is not defined` when that is empty.
        if reply["status"] in ("error", "memory"):
            return reply["error_line"].strip() or _REFERENCE_EMPTY
        shown = [_render(p, limit) for p in (reply["out"], reply["display"]) if p[2]]
        return _join(shown + tail).strip() or _REFERENCE_EMPTY
    pieces = [reply["out"], reply["display"], reply["error"]]
    sizes = [p[2] for p in pieces]
    budgets = sizes
    if sum(sizes) > limit:
        # The error's tail says what went wrong: it keeps at least half of the budget.
        error = min(sizes[2], max(limit // 2, limit - sizes[0] - sizes[1]))
        rest = limit - error
        display = min(sizes[1], max(rest // 2, rest - sizes[0]))
        budgets = [rest - display, display, error]
    texts = [_render(p, b, i == 2) for i, (p, b) in enumerate(zip(pieces, budgets, strict=True)) if p[2]]
    return _join(texts + tail)


def _valid_reply(reply: Any, n: int, limit: int) -> bool:
    def piece(p: Any) -> bool:
        return (
            isinstance(p, list)
            and len(p) == 3
            and isinstance(p[0], str)
            and isinstance(p[1], str)
            and isinstance(p[2], int)
            and len(p[0]) <= limit
            and len(p[1]) <= limit
            and p[2] >= len(p[0]) + len(p[1])
        )

    return (
        isinstance(reply, dict)
        and reply.get("n") == n
        and reply.get("status") in ("ok", "error", "memory", "output_limit")
        and isinstance(reply.get("completed"), bool)
        and all(piece(reply.get(k)) for k in ("out", "display", "error"))
        and isinstance(reply.get("error_line"), str)
        and len(reply["error_line"]) <= limit
    )


# ------------------------------------------------------------------------------------------ /proc


def _stat(pid: int) -> tuple[int, int] | None:
    """(start time, CPU ticks used) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19]), int(fields[11]) + int(fields[12])


def _anon_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            fields = f.read().split()
    except OSError:
        return 0
    return (int(fields[1]) - int(fields[2])) * _PAGE


# ------------------------------------------------------------------------------------------ zygote


class _Worker:
    """The harness's handle on one W2 process (and its namespace's PID 1, `pid1`)."""

    def __init__(self, pid1: int, pid2: int, sock: socket.socket, slot: int) -> None:
        self.pid1, self.pid2, self.sock, self.slot = pid1, pid2, sock, slot
        stat = _stat(pid2)
        self.start_time = stat[0] if stat else -1
        self.start_time1 = (_stat(pid1) or (-1, 0))[0]
        self.cpu_mark = stat[1] if stat else 0  # CPU ticks when the current call (or idle time) began
        self.cpu_exceeded = False
        self.baseline = _anon_bytes(pid2)
        self.growth = 0
        self.busy = False
        self.exited = threading.Event()
        self.exit: dict | None = None


class _Zygote:
    """The parent's end of one zygote: spawn and kill requests out, spawn results and exits in."""

    def __init__(
        self,
        config: dict,
        base_dir: str,
        on_spawned: Callable[[int, dict], None],
        on_exit: Callable[[dict], None],
        on_dead: Callable[[], None],
    ) -> None:
        self.base_dir = base_dir
        self._on_spawned, self._on_exit, self._on_dead = on_spawned, on_exit, on_dead
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        config = dict(config, ctrl_fd=child.fileno())
        self.log_path = os.path.join(base_dir, "zygote.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-s", "-B", _WORKER_SCRIPT, json.dumps(config)],
                pass_fds=(child.fileno(),),
                env=dict(config["env"], HOME=base_dir, TMPDIR=base_dir),
                cwd=base_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # Ctrl-C reaches the harness, which then closes us in order
            )
        child.close()
        self.facts: dict | None = None
        self.ready = threading.Event()
        self.dead = False
        self._send_lock = threading.Lock()
        self._ids = itertools.count()
        self._thread = threading.Thread(target=self._read, name="tir-executor-zygote", daemon=True)
        self._thread.start()

    def log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-2000:].decode(errors="replace").strip()
        except OSError:
            return ""

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            msg = json.loads(data)
            if msg["op"] == "ready":
                self.facts = msg["facts"]
                self.ready.set()
            elif msg["op"] == "spawned":
                self._on_spawned(msg["id"], msg)
            elif msg["op"] == "exit":
                self._on_exit(msg)
        self.dead = True
        self.ready.set()
        self._on_dead()

    def _send(self, msg: dict, fds: list[int] | None = None) -> bool:
        with self._send_lock:
            try:
                socket.send_fds(self.sock, [json.dumps(msg).encode()], fds or [])
            except OSError:
                return False
        return True

    def spawn(self, spec: dict, fd: int) -> int | None:
        """Ask for a worker; the answer comes to on_spawned(id, msg).  None if the zygote is gone."""
        request_id = next(self._ids)
        return request_id if self._send({"op": "spawn", "id": request_id, "spec": spec}, [fd]) else None

    def kill(self, pid1: int) -> None:
        self._send({"op": "kill", "pid": pid1})

    def close(self, timeout: float = 5.0, join: bool = True) -> None:
        self._send({"op": "shutdown"})
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if join:
            self._thread.join(timeout)
        self.sock.close()


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
        cfg = self.config
        self._index = next(_COUNTER)
        self._lock = threading.Condition()
        self._closed = False
        self._warm: list[_Worker] = []
        # Idle workers in least-recently-used order, with their sessions (weakly: a dropped session
        # frees its worker through Session's finalizer).
        self._idle: collections.OrderedDict[_Worker, weakref.ref[Session]] = collections.OrderedDict()
        self._live: dict[int, _Worker] = {}
        self._pending: dict[int, tuple[socket.socket, int, threading.Event | None, dict]] = {}
        self._starting = 0
        self._warm_starting = 0
        self._free_slots = list(range(cfg.max_workers - 1, -1, -1))
        self._spawn_error = ""
        self._names = itertools.count()
        self._budget = cfg.memory_budget_mb * 2**20 or _half_of_available_memory()
        self._base_dir = tempfile.mkdtemp(prefix="tir-exec-")
        os.chmod(self._base_dir, 0o711)  # workers (other uids) reach their own subdirectory only
        basic = cfg.isolation == "basic"
        self._cgroup = None if basic else _isolation.make_pids_cgroup(str(self._index))
        self._owner = os.getpid()
        bindir = os.path.dirname(sys.executable)
        self._zygote_config = {
            "namespaces": not basic,
            "network": cfg.network,
            "preload": list(cfg.preload),
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
            "max_processes": cfg.max_processes + 2,  # W1 and W2 themselves live in the cgroup
            "max_output_chars": cfg.max_output_chars,
            "abort_output_chars": max(100_000, 50 * cfg.max_output_chars),
            "uid_base": _isolation.uid_base(self._index) if os.geteuid() == 0 and not basic else None,
            "cgroup": self._cgroup,
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
        return Session(self)

    @property
    def isolation(self) -> dict:
        """Which isolation mechanisms are in force (plain builtins, for the run manifest)."""
        facts = self._wait_ready()
        return _isolation.summary(self._zygote_config, facts)

    def close(self) -> None:
        """Kill every worker and the zygote, remove the temporary directories.  Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self._live.values())
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
                _kill_if_same(w)
            if not w.busy:
                w.sock.close()
        self._remove_files()
        _LIVE_EXECUTORS.discard(self)

    def _remove_files(self) -> None:
        if self._cgroup:
            _isolation.kill_and_remove(self._cgroup)
        shutil.rmtree(self._base_dir, ignore_errors=True)
        if os.path.exists(self._base_dir):  # e.g. a directory tree too deep for rmtree's recursion
            subprocess.run(["rm", "-rf", self._base_dir], check=False)

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- zygote

    def _start_zygote(self) -> _Zygote:
        return _Zygote(self._zygote_config, self._base_dir, self._on_spawned, self._on_exit, self._on_dead)

    def _wait_ready(self) -> dict:
        zygote = self._zygote
        if not zygote.ready.wait(_READY_TIMEOUT) or zygote.facts is None:
            raise RuntimeError(f"the executor's zygote did not start: {zygote.log_tail() or 'no output'}")
        return zygote.facts

    def _on_dead(self) -> None:
        """The zygote died (it never should): its workers are orphans now; a new zygote starts on demand."""
        with self._lock:
            workers = list(self._live.values())
            pending = list(self._pending.items())
        for w in workers:
            _kill_if_same(w)
            self._on_exit({"pid": w.pid1, "code": 9, "why": 2})
        for request_id, _ in pending:
            self._on_spawned(request_id, {"error": "the zygote died"})

    def _on_spawned(self, request_id: int, msg: dict) -> None:
        with self._lock:
            entry = self._pending.pop(request_id, None)
            if entry is None:
                return
            sock, slot, event, box = entry
            self._starting -= 1
            worker = None
            if "error" in msg:
                self._spawn_error = msg["error"]
                self._free_slots.append(slot)
                sock.close()
            else:
                worker = _Worker(msg["pid1"], msg["pid2"], sock, slot)
                self._live[worker.pid1] = worker
            if event is None:
                self._warm_starting -= 1
                if worker is not None:
                    if self._closed:
                        self._discard(worker)
                    else:
                        self._warm.append(worker)
            else:
                box["worker"] = worker
                event.set()
            self._lock.notify_all()

    def _on_exit(self, msg: dict) -> None:
        with self._lock:
            worker = self._live.pop(msg["pid"], None)
            if worker is None:
                return
            worker.exit = msg
            self._free_slots.append(worker.slot)
            if worker in self._warm:
                self._warm.remove(worker)
                worker.sock.close()
            self._idle.pop(worker, None)
            self._lock.notify_all()
        worker.exited.set()
        _shutdown(worker.sock)  # wakes a run() blocked on this worker

    def _request(self, event: threading.Event | None, box: dict) -> None:
        """Send a spawn request (lock held)."""
        if self._zygote.dead and not self._closed:
            self._zygote.close(timeout=1.0, join=False)  # its reader thread may be waiting for our lock
            self._zygote = self._start_zygote()
        slot = self._free_slots.pop()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        spec = {"name": f"w{next(self._names)}", "uid": (self._zygote_config["uid_base"] or 0) + slot}
        self._starting += 1
        request_id = self._zygote.spawn(spec, theirs.fileno())
        theirs.close()
        if request_id is None:
            self._starting -= 1
            self._free_slots.append(slot)
            mine.close()
            if event is not None:
                box["worker"] = None
                event.set()
            return
        self._pending[request_id] = (mine, slot, event, box)

    def _refill(self) -> None:
        """Keep `warm_workers` forked ahead (lock held)."""
        cfg = self.config
        while (
            not self._closed
            and len(self._warm) + self._warm_starting < cfg.warm_workers
            and len(self._live) + self._starting < cfg.max_workers
            and self._free_slots
        ):
            self._warm_starting += 1
            self._request(None, {})

    # -- workers for sessions

    def _checkout(self, session: Session) -> tuple[_Worker | None, bool]:
        """The session's worker, marked busy: its own if alive (False), else a new one (True).
        (None, True) if the executor was closed meanwhile."""
        self._wait_ready()
        with self._lock:
            while True:
                if self._closed:
                    return None, True
                worker = session._worker
                if worker is not None and not worker.exited.is_set():
                    self._idle.pop(worker, None)
                    worker.busy = True
                    return worker, False
                if worker is not None:
                    session._detach()
                if self._warm:
                    worker = self._warm.pop()
                    break
                if len(self._live) + self._starting < self.config.max_workers and self._free_slots:
                    event, box = threading.Event(), {}
                    self._request(event, box)
                    self._lock.release()
                    try:
                        event.wait()
                    finally:
                        self._lock.acquire()
                    worker = box.get("worker")
                    if worker is None:
                        if self._closed:
                            return None, True
                        raise RuntimeError(f"the executor cannot start a worker: {self._spawn_error}")
                    if worker.exited.is_set():
                        continue
                    break
                if self._idle:  # at capacity: the least recently used idle session loses its worker
                    self._evict(next(iter(self._idle)))
                self._lock.wait(0.5)
            worker.busy = True
            session._worker = worker
            self._refill()
            return worker, True

    def _checkin(self, session: Session, worker: _Worker) -> None:
        """The call is over: the worker becomes idle, or is dropped; idle memory is kept in budget."""
        growth = max(0, _anon_bytes(worker.pid2) - worker.baseline)
        self._mark_cpu(worker)
        with self._lock:
            worker.busy = False
            worker.growth = growth
            if session._worker is not worker:
                return
            if worker.exited.is_set() or self._closed or session._closed:
                session._detach()
                return
            self._idle[worker] = weakref.ref(session)
            total = sum(w.growth for w in self._idle)
            if total > self._budget:
                for victim in sorted(self._idle, key=lambda w: -w.growth):
                    if total <= self._budget:
                        break
                    total -= victim.growth
                    self._evict(victim)

    def _evict(self, worker: _Worker) -> None:
        """Take an idle worker from its session (lock held); the session restarts on its next call."""
        session = self._idle.pop(worker)()
        if session is not None:
            session._detach()
        else:
            self._discard(worker)

    def _forget(self, cell: list[_Worker | None]) -> None:
        """A session was garbage-collected without close(): free its worker."""
        with self._lock:
            worker, cell[0] = cell[0], None
            if worker is not None:
                self._idle.pop(worker, None)
                self._discard(worker)

    def _discard(self, worker: _Worker) -> None:
        """Kill a worker no session will use again (lock held or not); close it if nobody reads it."""
        self._zygote.kill(worker.pid1)
        _shutdown(worker.sock)
        if not worker.busy:
            worker.sock.close()

    def _kill_and_wait(self, worker: _Worker) -> None:
        self._zygote.kill(worker.pid1)
        if not worker.exited.wait(_EXIT_WAIT):
            _kill_if_same(worker)
            worker.exited.wait(_EXIT_WAIT)

    def _mark_cpu(self, worker: _Worker) -> None:
        """A call (or an idle time) begins: it may use `cpu_seconds` from now on."""
        stat = _stat(worker.pid2)
        if stat is not None and stat[0] == worker.start_time:
            worker.cpu_mark = stat[1]

    def _watch(self) -> None:
        """Kill workers over their CPU budget: a call's threads, or threads left running between calls.
        Polled from here because RLIMIT_CPU could only be re-armed per call with CAP_SYS_RESOURCE."""
        budget = self.config.cpu_seconds * _CLK_TCK
        while not self._stop.wait(_WATCH_INTERVAL):
            with self._lock:
                workers = list(self._live.values())
            for worker in workers:
                stat = _stat(worker.pid2)
                if stat is not None and stat[0] == worker.start_time and stat[1] - worker.cpu_mark > budget:
                    worker.cpu_exceeded = True
                    self._zygote.kill(worker.pid1)


def _half_of_available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return 4 * 2**30


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _kill_if_same(worker: _Worker) -> None:
    """SIGKILL a worker directly, only if its pid still names the same process (start time)."""
    for pid, start_time in ((worker.pid2, worker.start_time), (worker.pid1, worker.start_time1)):
        stat = _stat(pid)
        if stat is not None and stat[0] == start_time:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


# ------------------------------------------------------------------------------------------ session


class Session:
    """One trajectory's Python: variables live across `run()` calls.  Use one thread at a time per
    session (calls on one session are serialized); sessions are independent of each other."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._cell: list[_Worker | None] = [None]  # shared with the finalizer, which must not hold self
        weakref.finalize(self, executor._forget, self._cell)
        self._run_lock = threading.Lock()
        self._closed = False
        self._calls = 0
        self._state_in_worker = False  # a call has run in the current worker
        self._pending_loss = False  # a reported loss of state not yet made good (replay, or a new call)
        self._history: list[str] = []  # completed cells, kept for replay_on_restart

    @property
    def _worker(self) -> _Worker | None:
        return self._cell[0]

    @_worker.setter
    def _worker(self, worker: _Worker | None) -> None:
        self._cell[0] = worker

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        ex = self._executor
        with ex._lock:
            self._closed = True
            worker = self._worker
            if worker is not None:
                ex._idle.pop(worker, None)
                if worker.busy:  # a run() in another thread: kill it, that thread cleans up
                    ex._zygote.kill(worker.pid1)
                    _shutdown(worker.sock)
                else:
                    self._detach()

    def _detach(self) -> None:
        """Drop the worker (executor lock held)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            self._executor._discard(worker)

    def run(self, code: str) -> Observation:
        """Run one snippet; never raises for anything the snippet does."""
        if not isinstance(code, str):
            raise TypeError(f"Session.run: code must be a str, got {type(code).__name__}")
        with self._run_lock:
            if self._closed or self._executor._closed:
                raise ExecutorClosed("Session.run(): the session or its executor is closed")
            return self._run(code)

    def _run(self, code: str) -> Observation:
        ex, cfg = self._executor, self._executor.config
        closed = Observation("killed", "RuntimeError: the executor was closed", 0.0, True)
        worker, fresh = ex._checkout(self)
        if worker is None:
            return closed
        # A worker that vanished between calls (evicted, or died idle) has not been reported yet.
        unreported = fresh and self._state_in_worker
        lost = fresh and (self._state_in_worker or self._pending_loss)
        if lost and cfg.replay_on_restart and self._history:
            worker, lost = self._replay(worker)
            if worker is None:
                return closed
        if lost:
            self._history = []
        note = _NOTE_LOST + "\n" if lost and unreported and cfg.observation_style == "full" else ""
        self._pending_loss = False
        self._calls += 1
        start = time.monotonic()
        reply, failure = self._exchange(worker, code, self._calls)
        if reply is not None:
            elapsed = time.monotonic() - start
            ex._checkin(self, worker)
            self._state_in_worker = True
            if reply["completed"] and cfg.replay_on_restart:
                self._history.append(code)
            abort = ex._zygote_config["abort_output_chars"]
            text = note + _compose(reply, cfg.max_output_chars, cfg.observation_style, abort)
            return Observation(reply["status"], sanitize(text), elapsed, lost)
        status, message = self._failure(worker, failure)
        elapsed = time.monotonic() - start
        ex._checkin(self, worker)
        self._state_in_worker, self._pending_loss = False, True
        if ex._closed:
            return Observation("killed", closed.text, elapsed, True)
        if cfg.observation_style == "full" and not cfg.replay_on_restart:
            message += "\n" + _NOTE_LOST
        if cfg.observation_style == "reference" and status == "timeout":
            message = _REFERENCE_TIMEOUT
        return Observation(status, note + message, elapsed, True)

    def _replay(self, worker: _Worker) -> tuple[_Worker | None, bool]:
        """Re-run the completed cells in a new worker: (worker to use, state still lost)."""
        for code in self._history:
            self._calls += 1
            reply, failure = self._exchange(worker, code, self._calls)
            if reply is None:
                self._failure(worker, failure)
                self._executor._checkin(self, worker)
                return self._executor._checkout(self)[0], True
            if not reply["completed"]:
                return worker, True
        return worker, False

    def _exchange(self, worker: _Worker, code: str, n: int) -> tuple[dict | None, str]:
        """Send one cell and read its reply within the timeout: (reply, "") or
        (None, "timeout" | "eof" | "oversize" | "garbage")."""
        cfg = self._executor.config
        limit = cfg.max_output_chars
        self._executor._mark_cpu(worker)
        frame = json.dumps({"code": code, "n": n}).encode()
        sock = worker.sock
        deadline = time.monotonic() + cfg.timeout
        cap = 16 * limit + 65536  # a reply holds at most 6 pieces of `limit` chars (JSON escapes x6)
        try:
            sock.settimeout(cfg.timeout)
            sock.sendall(_HEADER.pack(len(frame)) + frame)
            (length,) = _HEADER.unpack(_recv(sock, _HEADER.size, deadline))
            if length > cap:
                return None, "oversize"
            body = _recv(sock, length, deadline)
        except TimeoutError:
            return None, "timeout"
        except OSError:
            return None, "eof"
        try:
            reply = json.loads(body)
        except ValueError:
            return None, "garbage"
        return (reply, "") if _valid_reply(reply, n, limit) else (None, "garbage")

    def _failure(self, worker: _Worker, failure: str) -> tuple[str, str]:
        """The worker is lost: make sure it is dead, and say why."""
        cfg = self._executor.config
        if failure == "eof":
            worker.exited.wait(_EXIT_WAIT)  # the zygote's exit report says how it ended
        self._executor._kill_and_wait(worker)
        if failure == "timeout":
            return (
                "timeout",
                f"TimeoutError: the code did not finish within {cfg.timeout:g} s and was stopped",
            )
        if failure == "oversize":
            return "output_limit", "RuntimeError: the Python process sent too much output and was stopped"
        if failure == "garbage":
            return "killed", "RuntimeError: the Python process broke the executor's protocol and was stopped"
        info = worker.exit or {}
        code = info.get("code", -1)
        if worker.cpu_exceeded or code == 128 + signal.SIGXCPU:
            return "timeout", f"TimeoutError: the code used more than {cfg.cpu_seconds} s of CPU time"
        if info.get("why") != _CLD_EXITED:
            return "killed", "RuntimeError: the Python process was killed"
        if code > 128:
            try:
                name = signal.Signals(code - 128).name
            except ValueError:
                name = f"signal {code - 128}"
            return "killed", f"RuntimeError: the Python process died ({name})"
        return "killed", f"RuntimeError: the Python process exited (code {code})"


def _recv(sock: socket.socket, n: int, deadline: float) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise ConnectionResetError("worker closed its socket")
        buf += chunk
    return bytes(buf)
