"""The harness's end of the zygote (`worker.py`, run as a separate program) and of each worker it forks.

`Zygote` sends spawn and kill requests and reads spawn results and exits on a thread of its own; `Worker`
is the handle on one W1/W2 pair with the paths of its cgroups.  Nothing the zygote sends is parsed
recursively beyond one flat JSON object from a process no snippet can reach (the zygote never runs
snippet code), and a zygote that dies is reported through `on_dead` so the pool can start another.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable

WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = resource.getpagesize()
_MAX_MESSAGE = 1 << 20


_PF_EXITING = 0x4  # task flag, set when a process starts to exit (before its files are closed)


def _stat_fields(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def stat(pid: int) -> tuple[int, int] | None:
    """(start time, CPU ticks used) of a process, or None if it is gone."""
    fields = _stat_fields(pid)
    return None if fields is None else (int(fields[19]), int(fields[11]) + int(fields[12]))


def anon_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            fields = f.read().split()
    except OSError:
        return 0
    return (int(fields[1]) - int(fields[2])) * _PAGE


def read_int(path: str) -> int | None:
    try:
        with open(path, "rb") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def write_text(path: str, text: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError:
        return False
    return True


class Worker:
    """The harness's handle on one W2 process (and its namespace's PID 1, `pid1`)."""

    def __init__(self, pid1: int, pid2: int, sock: socket.socket, slot: int, cgroups: dict[str, str]) -> None:
        self.pid1, self.pid2, self.sock, self.slot, self.cgroups = pid1, pid2, sock, slot, cgroups
        st = stat(pid2)
        self.start_time = st[0] if st else -1
        self.start_time1 = (stat(pid1) or (-1, 0))[0]
        self.cpu_mark = self.cpu() or 0  # CPU (ns) when the current call (or idle time) began
        self.cpu_exceeded = False
        self.frozen = False
        self.baseline = 0 if "memory" in cgroups else anon_bytes(pid2)
        self.growth = 0
        self.busy = False
        self.exited = threading.Event()
        self.exit: dict | None = None

    def cpu(self) -> int | None:
        """CPU nanoseconds used by everything in the session (its cpuacct cgroup), else by W2 alone."""
        if "cpuacct" in self.cgroups:
            return read_int(os.path.join(self.cgroups["cpuacct"], "cpuacct.usage"))
        st = stat(self.pid2)
        if st is None or st[0] != self.start_time:
            return None
        return st[1] * 1_000_000_000 // CLK_TCK

    def memory(self) -> int:
        """Bytes the session holds beyond a fresh worker: its memory cgroup (processes, tmpfs, memfd)."""
        if "memory" in self.cgroups:
            return read_int(os.path.join(self.cgroups["memory"], "memory.usage_in_bytes")) or 0
        return max(0, anon_bytes(self.pid2) - self.baseline)

    def oom_killed(self) -> bool:
        """Did the memory cgroup's limit kill a process of this session?"""
        if self.exit is not None and "oom" in self.exit:
            return bool(self.exit["oom"])  # the zygote read it before removing the group
        if "memory" not in self.cgroups:
            return False
        try:
            with open(os.path.join(self.cgroups["memory"], "memory.oom_control")) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and value.strip().isdigit():
                        return int(value) > 0
        except OSError:
            pass
        return False

    def freeze(self, frozen: bool) -> bool:
        if "freezer" not in self.cgroups:
            return False
        if write_text(os.path.join(self.cgroups["freezer"], "freezer.state"), "FROZEN" if frozen else "THAWED"):
            self.frozen = frozen
            return True
        return False

    def hung_up(self) -> bool:
        """Is W2 alive and not exiting?  Then the end of its socket was closed or shut down on purpose: no
        exit is coming to wait for.  (A process that exits is marked exiting before its files close.)"""
        fields = _stat_fields(self.pid2)
        if fields is None or int(fields[19]) != self.start_time:
            return False
        return fields[0] not in (b"Z", b"X", b"x") and not int(fields[6]) & _PF_EXITING

    def kill_if_same(self) -> None:
        """SIGKILL directly, only if the pids still name the same processes (start time)."""
        for pid, start_time in ((self.pid2, self.start_time), (self.pid1, self.start_time1)):
            st = stat(pid)
            if st is not None and st[0] == start_time:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if self.frozen:
            self.freeze(False)


class Zygote:
    """The parent's end of one zygote: spawn and kill requests out, spawn results and exits in."""

    def __init__(
        self,
        config: dict,
        base_dir: str,
        on_spawned: Callable[[int, dict], None],
        on_exit: Callable[[dict], None],
        on_dead: Callable[[], None],
        on_ready: Callable[[], None],
    ) -> None:
        self.base_dir = base_dir
        self._on_spawned, self._on_exit, self._on_dead, self._on_ready = on_spawned, on_exit, on_dead, on_ready
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.log_path = os.path.join(base_dir, "zygote.log")
        # Every worker's /proc/self/cmdline is the zygote's: no path belongs there (not the checkout's, not
        # the cgroups' nor the harness's pid).  So the interpreter is named without its directory (first on
        # PATH: the interpreter finds itself there), the script runs from a descriptor, and the configuration
        # comes over the socket.
        script = os.open(WORKER_SCRIPT, os.O_RDONLY)
        try:
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    [os.path.basename(sys.executable), "-s", "-B", f"/proc/self/fd/{script}", str(child.fileno())],
                    executable=sys.executable,
                    pass_fds=(child.fileno(), script),
                    env=dict(config["env"], HOME=base_dir, TMPDIR=base_dir),
                    cwd=base_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    start_new_session=True,  # Ctrl-C reaches the harness, which then closes us in order
                )
        finally:
            os.close(script)
            child.close()
        self.sock.send(json.dumps(config).encode())
        self.facts: dict | None = None
        self.ready = threading.Event()
        self.dead = False
        self._ids = itertools.count()
        # Requests go out from a thread of their own: the executor asks with its lock held, and a send blocks
        # when the socket is full, which happens when the zygote is itself blocked writing exits to us, whose
        # reader waits for that lock (hundreds of sessions ending at once deadlocked so).
        self._outbox: collections.deque[tuple[dict, int | None] | None] = collections.deque()
        self._outbox_ready = threading.Condition()
        self._closing = False
        self._sender = threading.Thread(target=self._send_all, name="tir-executor-zygote-send", daemon=True)
        self._sender.start()
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
                data = self.sock.recv(_MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                break
            try:
                msg = json.loads(data)
                op = msg["op"]
                if op == "ready":
                    self.facts = msg["facts"]
                    self.ready.set()
                    self._on_ready()
                elif op == "spawned":
                    self._on_spawned(msg["id"], msg)
                elif op == "exit":
                    self._on_exit(msg)
            except Exception as exc:  # the zygote is ours, but a broken message must not end this thread
                print(f"tir-harness executor: bad message from the zygote: {exc!r}", file=sys.stderr)
        self.dead = True
        self.ready.set()
        self._on_dead()
        self._on_ready()

    def _send(self, msg: dict, fd: int | None = None) -> bool:
        """Queue `msg` (and a descriptor, which the sending closes), never waiting; False if the zygote is gone.
        A request the zygote never reads is answered by its end: `_read` sees it and calls on_dead."""
        with self._outbox_ready:
            if self.dead or self._closing:
                if fd is not None:
                    os.close(fd)
                return False
            self._outbox.append((msg, fd))
            self._outbox_ready.notify()
        return True

    def _send_all(self) -> None:
        while True:
            with self._outbox_ready:
                self._outbox_ready.wait_for(lambda: bool(self._outbox))
                item = self._outbox.popleft()
            if item is None:  # close(): nothing more to send
                return
            msg, fd = item
            try:
                socket.send_fds(self.sock, [json.dumps(msg).encode()], [fd] if fd is not None else [])
            except OSError:
                pass  # the zygote is gone: its reader says so
            finally:
                if fd is not None:
                    os.close(fd)

    def spawn(self, spec: dict, fd: int) -> int | None:
        """Ask for a worker (`fd` is the caller's to close: a copy is sent); the answer comes to
        on_spawned(id, msg).  None if the zygote is gone."""
        request_id = next(self._ids)
        return request_id if self._send({"op": "spawn", "id": request_id, "spec": spec}, os.dup(fd)) else None

    def kill(self, pid1: int) -> None:
        self._send({"op": "kill", "pid": pid1})

    def close(self, timeout: float = 30.0, join: bool = True) -> None:
        """Ask the zygote to end every worker and exit, and wait for it: when it has exited, every process
        of its sessions has been reaped.  Its own shutdown is bounded (its last step drains leftover children
        for at most 5 s), so the default wait is far longer: a loaded machine slows it, and a zygote killed
        half-way would leave processes it had not reaped yet."""
        self._send({"op": "shutdown"})
        with self._outbox_ready:
            self._closing = True
            self._outbox.append(None)
            self._outbox_ready.notify()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"tir-harness executor: the zygote did not exit within {timeout:g} s; killed", file=sys.stderr)
            self.proc.kill()
            self.proc.wait()
        if join:
            self._thread.join(timeout)
        self.sock.close()
