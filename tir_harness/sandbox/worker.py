"""The sandbox's side: a zygote that imports the heavy modules once and forks one worker per session.

`tir_harness.sandbox.executor` runs this file as a script (the harness never imports it) with a JSON configuration
in argv[1] and a SOCK_SEQPACKET control socket on the fd it names.  Per session, the zygote forks:

    zygote ── W0: setsid, joins the pids cgroup, unshares a PID namespace, forks W1, exits
                 └─ W1: PID 1 of that namespace; only reaps, and exits with W2's status
                      └─ W2: limits itself, drops privileges, runs the snippets over its socket

The zygote is a child subreaper, so W1 becomes its child when W0 exits: it alone reaps W1, which makes
its kills race-free, and killing W1 makes the kernel kill everything left in the namespace.  W2 is not
PID 1, so signals and `getppid()` behave for the snippet as in any Python process.

Everything here is trusted only as far as the snippet cannot reach it: the harness enforces the limits
from outside (wall clock, kills, output cap) and treats whatever W2 sends as untrusted.
"""

from __future__ import annotations

import ast
import builtins
import collections
import ctypes
import errno
import gc
import importlib
import io
import json
import linecache
import os
import resource
import select
import shutil
import signal
import socket
import struct
import sys
import traceback
import types

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
CLONE_NEWUSER = 0x10000000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
_HEADER = struct.Struct("!I")
_PID = struct.Struct("=i")
_LIBC = ctypes.CDLL(None, use_errno=True)


def _check(ret: int) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _unshare(flags: int) -> None:
    _check(_LIBC.unshare(ctypes.c_int(flags)))


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    def c(text: str | None) -> bytes | None:
        return None if text is None else text.encode()

    _check(_LIBC.mount(c(source), c(target), c(fstype), ctypes.c_ulong(flags), c(data)))


def _prctl(option: int, arg: int) -> None:
    _check(_LIBC.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), 0))


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


# --------------------------------------------------------------------------------------------- frames


def send_frame(sock: socket.socket, obj: object) -> None:
    data = json.dumps(obj).encode()
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket) -> dict | None:
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    body = _recv_exact(sock, _HEADER.unpack(header)[0])
    return None if body is None else json.loads(body)


# --------------------------------------------------------------------------------------------- worker (W2)


class OutputLimitExceeded(BaseException):
    """Raised into the snippet when it keeps printing far past the cap (BaseException: `except Exception`
    in the snippet must not swallow it)."""


class Capture(io.TextIOBase):
    """sys.stdout/sys.stderr for one cell: keeps the first and the last `limit` characters only."""

    def __init__(self, limit: int, abort: int) -> None:
        self._limit, self._abort = limit, abort
        self._head: list[str] = []
        self._head_len = 0
        self._tail: collections.deque[str] = collections.deque()
        self._tail_len = 0
        self.total = 0

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, s: str) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        n = len(s)
        self.total += n
        room = self._limit - self._head_len
        if room > 0:
            self._head.append(s[:room])
            self._head_len += min(room, n)
        if n > room:
            # Only the last `limit` characters can reach the tail: never copy more of a huge string.
            piece = s[max(room, n - self._limit) :]
            self._tail.append(piece)
            self._tail_len += len(piece)
            while self._tail_len - len(self._tail[0]) >= self._limit:
                self._tail_len -= len(self._tail.popleft())
        if self.total > self._abort:
            raise OutputLimitExceeded(f"more than {self._abort} characters of output")
        return n

    def piece(self) -> list:
        """[head, tail, total]: the wire format of a possibly cut text (see executor._render)."""
        tail = "".join(self._tail)[-self._limit :] if self._tail else ""
        return ["".join(self._head), tail, self.total]


def clip(text: str, limit: int) -> list:
    return [text[:limit], text[limit:][-limit:], len(text)]


def clean_exit(exc: BaseException) -> bool:
    try:
        return isinstance(exc, SystemExit) and exc.code in (None, 0)
    except BaseException:  # a SystemExit subclass whose code misbehaves is just an error
        return False


def describe(exc: BaseException, limit: int) -> tuple[str, str, str]:
    """(status, traceback, last line) for an exception the snippet raised."""
    if clean_exit(exc):
        return "ok", "", ""
    if isinstance(exc, OutputLimitExceeded):
        return "output_limit", "", ""
    status = "memory" if isinstance(exc, MemoryError) else "error"
    try:
        report = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
        # The harness's own frames (exec, our stdout) are noise to the model; a syntax error has none.
        frames = [] if isinstance(exc, SyntaxError) else [f for f in report.stack if f.filename != __file__]
        report.stack = traceback.StackSummary.from_list(frames)
        text = "".join(report.format())
        last = text.rstrip("\n").rsplit("\n", 1)[-1][-limit:]
    except BaseException:  # the snippet's __str__ may itself fail; the type name is always there
        text = last = type(exc).__name__
    return status, text, last


class Cells:
    """The snippets of one session, run one after the other in one `__main__` namespace."""

    def __init__(self, sock: socket.socket, limit: int, abort: int, cpu_seconds: int) -> None:
        self.sock, self.limit, self.abort, self.cpu_seconds = sock, limit, abort, cpu_seconds
        self.pid = os.getpid()
        main = types.ModuleType("__main__")
        main.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = main  # functions pickle by reference (multiprocessing) as in a script
        self.ns = main.__dict__

    def serve(self) -> None:
        while True:
            request = recv_frame(self.sock)
            if request is None:
                return
            send_frame(self.sock, self.run(request["code"], request["n"]))

    def _execute(self, code: str, filename: str) -> str:
        tree = ast.parse(code, filename)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        exec(compile(tree, filename, "exec"), self.ns)
        if last is None:
            return ""
        value = eval(compile(last, filename, "eval"), self.ns)
        if value is None:
            return ""
        self.ns["_"] = value
        return repr(value)

    def _arm_cpu(self) -> None:
        # A backstop only (the snippet may raise a soft limit): the harness's watchdog is what binds.
        usage = resource.getrusage(resource.RUSAGE_SELF)
        soft = int(usage.ru_utime + usage.ru_stime) + self.cpu_seconds + 1
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))

    def run(self, code: str, n: int) -> dict:
        self._arm_cpu()
        capture = Capture(self.limit, self.abort)
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = capture
        status, display, error, last, completed = "ok", "", "", "", True
        try:
            display = self._execute(code, f"<cell-{n}>")
        except BaseException as exc:  # whatever the snippet does is an observation, never our exit
            if os.getpid() != self.pid:
                os._exit(0)
            completed = clean_exit(exc)
            status, error, last = describe(exc, self.limit)
        if os.getpid() != self.pid:
            os._exit(0)  # a fork made by the snippet came back here: it must never speak the protocol
        sys.stdout, sys.stderr = saved
        out = capture.piece()
        if status == "ok" and out[2] > self.limit:
            status = "output_limit"
        return {
            "n": n,
            "status": status,
            "completed": completed,
            "out": out,
            "display": clip(display, self.limit),
            "error": clip(error, self.limit),
            "error_line": last,
        }


def _count_tasks_of(uid: int) -> int:
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                pass
    return count


def _lower(which: int, value: int) -> None:
    """Set soft and hard limit to `value`, or keep a lower hard limit the harness already runs under."""
    hard = resource.getrlimit(which)[1]
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def _vm_size() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def setup_worker(cfg: dict, spec: dict, sock_fd: int, drop: bool) -> None:
    """Turn a fresh fork into W2: own session, no inherited fds, scrubbed env, limits, no privileges."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    workdir = spec["workdir"]
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update(cfg["env"], HOME=workdir, TMPDIR=workdir, USER="sandbox", LOGNAME="sandbox")
    if "tempfile" in sys.modules:
        sys.modules["tempfile"].tempdir = None
    sys.argv = [""]
    mb = 1024 * 1024
    _lower(resource.RLIMIT_AS, _vm_size() + cfg["memory_mb"] * mb)
    _lower(resource.RLIMIT_FSIZE, cfg["file_size_mb"] * mb)
    _lower(resource.RLIMIT_CORE, 0)
    _lower(resource.RLIMIT_NOFILE, cfg["max_open_files"])
    if not spec["cgroup"]:  # RLIMIT_NPROC counts every task of the real uid: exact for a worker's own uid
        _lower(
            resource.RLIMIT_NPROC,
            cfg["max_processes"] - 1 if drop else _count_tasks_of(os.getuid()) + cfg["max_processes"],
        )
    try:
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
    except OSError:
        pass
    if drop:
        uid = spec["uid"]
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    if "numpy" in sys.modules:  # a fresh process would not share its random state with the other sessions
        sys.modules["numpy"].random.seed()


# --------------------------------------------------------------------------------------------- zygote


def _enter_namespaces(cfg: dict) -> dict:
    """Network (and for non-root, user) namespace for the zygote and hence every worker: done once,
    before importing numpy, because unshare(CLONE_NEWUSER) needs a single-threaded process."""
    facts = {"network_namespace": False, "user_namespace": False, "hidden_dirs": []}
    if not cfg["namespaces"]:
        return facts
    net = 0 if cfg["network"] else CLONE_NEWNET
    if os.geteuid() == 0:  # a user namespace only if root lacks the capability (e.g. in a container)
        attempts = [net, CLONE_NEWUSER | net] if net else []
    else:
        attempts = [CLONE_NEWUSER | net]
    uid, gid = os.geteuid(), os.getegid()
    for flags in attempts:
        try:
            _unshare(flags)
        except OSError:
            continue
        if flags & CLONE_NEWUSER:
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"0 {uid} 1")
            _write("/proc/self/gid_map", f"0 {gid} 1")
            facts["user_namespace"] = True
        facts["network_namespace"] = bool(flags & CLONE_NEWNET)
        break
    if os.geteuid() == 0 and not facts["user_namespace"] and cfg["uid_base"] is not None:
        try:
            _unshare(CLONE_NEWNS)
            _mount(None, "/", None, MS_REC | MS_PRIVATE, None)  # nothing we mount reaches the host
            facts["hidden_dirs"] = _expose(_python_paths())
        except OSError:
            pass
    return facts


def _python_paths() -> list[str]:
    paths = {sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(p for p in sys.path if p and os.path.isdir(p))
    return sorted({os.path.realpath(p) for p in paths})


def _expose(targets: list[str], directory: str = "/") -> list[str]:
    """Let unprivileged uids reach `targets` (the interpreter may live in a 0700 home): each directory
    on the way that others may not search is covered by a tmpfs that holds only bind mounts of the
    ways on.  Everything else in it is hidden from the sandbox.  Returns the covered directories."""
    below = [t for t in targets if t != directory]
    children = sorted({os.path.relpath(t, directory).split("/")[0] for t in below})
    covered = []
    if not os.stat(directory).st_mode & 0o001:
        if directory in targets:
            raise PermissionError(f"{directory} is not readable by other users")
        fds = {c: os.open(os.path.join(directory, c), os.O_PATH) for c in children}
        _mount("tmpfs", directory, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
        for child, fd in fds.items():
            os.mkdir(os.path.join(directory, child))
            _mount(f"/proc/self/fd/{fd}", os.path.join(directory, child), None, MS_BIND | MS_REC, None)
            os.close(fd)
        covered.append(directory)
    for child in children:
        path = os.path.join(directory, child)
        covered += _expose([t for t in below if t == path or t.startswith(path + "/")], path)
    return covered


def _probe_unprivileged(uid: int) -> bool:
    """Can a worker that drops to `uid` still import from the standard library?"""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            code = 0 if all(os.access(p, os.R_OK | os.X_OK) for p in _python_paths()) else 1
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def _report_error(w: int, text: str) -> None:
    data = text[:500].encode()
    os.write(w, b"E" + _PID.pack(len(data)) + data)


def _probe_pid_namespace() -> bool:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _unshare(CLONE_NEWPID)
            child = os.fork()
            if child == 0:
                os._exit(0 if os.getpid() == 1 else 1)
            code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


class Zygote:
    """Serves spawn/kill/shutdown requests from the harness and reports each worker's end."""

    def __init__(self, cfg: dict, ctrl: socket.socket, facts: dict) -> None:
        self.cfg, self.ctrl, self.facts = cfg, ctrl, facts
        self.workers: dict[int, dict] = {}  # W1 pid -> spec (+ "pid2")
        self.drop = facts["uid_drop"]
        # A worker's own uid makes RLIMIT_NPROC exact; a cgroup v1 attach costs an RCU grace period.
        self.cgroup = None if self.drop else cfg["cgroup"]
        if self.cgroup:
            facts["process_limit"] = "pids_cgroup_v1"
        elif self.drop:
            facts["process_limit"] = "rlimit_nproc_per_worker_uid"
        elif os.geteuid() == 0 and not facts["user_namespace"]:
            facts["process_limit"] = "none"  # RLIMIT_NPROC does not bind root
        else:
            facts["process_limit"] = "rlimit_nproc_shared_uid"
        self.wake_r, self.wake_w = os.pipe()

    def send(self, obj: dict) -> None:
        try:
            self.ctrl.send(json.dumps(obj).encode())
        except OSError:
            pass  # the harness is gone: the next recv sees EOF and we clean up

    def serve(self) -> None:
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(self.wake_w)
        self.send({"op": "ready", "facts": self.facts, "pid": os.getpid()})
        while True:
            readable = select.select([self.ctrl, self.wake_r], [], [], 1.0)[0]
            if self.wake_r in readable:
                while True:
                    try:
                        if not os.read(self.wake_r, 512):
                            break
                    except BlockingIOError:
                        break
            self.reap()
            if self.ctrl in readable:
                try:
                    data, fds, _, _ = socket.recv_fds(self.ctrl, 1 << 16, 1)
                except OSError:
                    data, fds = b"", []
                if not data:  # the harness exited or closed us: nothing may outlive it
                    self.shutdown()
                    return
                msg = json.loads(data)
                if msg["op"] == "spawn":
                    self.spawn(msg, fds[0])
                elif msg["op"] == "kill":
                    self.kill(msg["pid"])
                elif msg["op"] == "shutdown":
                    self.shutdown()
                    self.send({"op": "bye"})
                    return

    # -- spawning

    def spawn(self, msg: dict, sock_fd: int) -> None:
        spec = dict(msg["spec"], workdir=os.path.join(self.cfg["base_dir"], msg["spec"]["name"]), cgroup=None)
        if self.cgroup:
            spec["cgroup"] = os.path.join(self.cgroup, spec["name"])
        try:
            os.mkdir(spec["workdir"], 0o700)
            if self.drop:
                os.chown(spec["workdir"], spec["uid"], spec["uid"])
            if spec.get("cgroup"):
                os.mkdir(spec["cgroup"])
                _write(os.path.join(spec["cgroup"], "pids.max"), str(self.cfg["max_processes"]))
            r, w = os.pipe()
            pid0 = os.fork()
        except OSError as exc:
            os.close(sock_fd)
            self._cleanup(spec)
            self.send({"op": "spawned", "id": msg["id"], "error": f"cannot start a worker: {exc}"})
            return
        if pid0 == 0:
            self._w0(spec, sock_fd, r, w)
        os.close(w)
        os.close(sock_fd)
        pids, error = self._read_pids(r)
        os.close(r)
        os.waitpid(pid0, 0)
        if "1" in pids:
            spec["pid2"] = pids.get("2")
            self.workers[pids["1"]] = spec
            if error or "2" not in pids:
                self.kill(pids["1"])
        else:
            self._cleanup(spec)
        if error or "2" not in pids:
            self.send({"op": "spawned", "id": msg["id"], "error": error or "the worker did not start"})
        else:
            self.send({"op": "spawned", "id": msg["id"], "pid1": pids["1"], "pid2": pids["2"]})

    @staticmethod
    def _read_pids(r: int) -> tuple[dict[str, int], str]:
        data = b""
        while select.select([r], [], [], 10.0)[0]:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            data += chunk
        pids: dict[str, int] = {}
        error = ""
        while len(data) >= 5:  # records: tag, int32 (a pid, or the length of an error text that follows)
            tag, value = data[:1].decode(), _PID.unpack(data[1:5])[0]
            if tag == "E":
                error, data = data[5 : 5 + value].decode(errors="replace"), data[5 + value :]
            else:
                pids[tag], data = value, data[5:]
        return pids, error

    def _w0(self, spec: dict, sock_fd: int, r: int, w: int) -> None:
        code = 0
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self.ctrl.close()
            for fd in (r, self.wake_r, self.wake_w):
                os.close(fd)
            os.setsid()
            if spec.get("cgroup"):
                _write(os.path.join(spec["cgroup"], "cgroup.procs"), "0")
            if self.facts["pid_namespace"]:
                _unshare(CLONE_NEWPID)
            pid1 = os.fork()
            if pid1 == 0:
                self._w1(spec, sock_fd, w)
            os.write(w, b"1" + _PID.pack(pid1))
        except BaseException as exc:
            _report_error(w, f"W0: {exc!r}")
            code = 1
        os._exit(code)

    def _w1(self, spec: dict, sock_fd: int, w: int) -> None:
        code = 70
        try:
            pid2 = os.fork()
            if pid2 == 0:
                self._w2(spec, sock_fd, w)
            os.close(w)
            os.close(sock_fd)
            while True:  # as PID 1 we inherit the namespace's orphans: reap them until W2 is gone
                pid, status = os.waitpid(-1, 0)
                if pid == pid2:
                    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
                    code = 128 + sig if sig else os.waitstatus_to_exitcode(status)
                    break
        finally:
            os._exit(code)

    def _w2(self, spec: dict, sock_fd: int, w: int) -> None:
        try:
            outer_pid = int(os.readlink("/proc/self"))  # /proc belongs to the outer namespace
            os.closerange(3, min(sock_fd, w))
            os.closerange(max(sock_fd, w) + 1, 1 << 16)
            os.closerange(min(sock_fd, w) + 1, max(sock_fd, w))
            setup_worker(self.cfg, spec, sock_fd, self.drop)
            os.write(w, b"2" + _PID.pack(outer_pid))
            os.close(w)
        except BaseException as exc:
            try:
                _report_error(w, f"W2 setup: {exc!r}")
            finally:
                os._exit(71)
        try:
            sock = socket.socket(fileno=sock_fd)
            cfg = self.cfg
            Cells(sock, cfg["max_output_chars"], cfg["abort_output_chars"], cfg["cpu_seconds"]).serve()
        finally:
            os._exit(0)

    # -- ending

    def kill(self, pid1: int) -> None:
        spec = self.workers.get(pid1)
        if spec is None:
            return  # already reaped: the pid may belong to someone else now
        for target, sender in ((spec.get("pid2"), os.killpg), (pid1, os.kill)):
            if target:
                try:
                    sender(target, signal.SIGKILL)
                except OSError:
                    pass
        self._kill_cgroup(spec)

    def _kill_cgroup(self, spec: dict) -> None:
        if not spec.get("cgroup"):
            return
        for _ in range(100):  # a fork bomb may add processes while we kill: repeat until empty
            try:
                with open(os.path.join(spec["cgroup"], "cgroup.procs")) as f:
                    pids = [int(p) for p in f.read().split()]
            except OSError:
                return
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def reap(self) -> None:
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            spec = self.workers.pop(info.si_pid, None)
            if spec is not None:
                # W1 is still an unreaped zombie here, so W2's process group id cannot be reused yet.
                if spec.get("pid2"):
                    try:
                        os.killpg(spec["pid2"], signal.SIGKILL)
                    except OSError:
                        pass
                self._kill_cgroup(spec)
            try:
                os.waitpid(info.si_pid, 0)
            except ChildProcessError:
                pass
            if spec is not None:
                self._cleanup(spec)
                self.send({"op": "exit", "pid": info.si_pid, "code": info.si_status, "why": info.si_code})

    def _cleanup(self, spec: dict) -> None:
        shutil.rmtree(spec["workdir"], ignore_errors=True)
        if spec.get("cgroup"):
            try:
                os.rmdir(spec["cgroup"])
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    self._kill_cgroup(spec)
                    try:
                        os.rmdir(spec["cgroup"])
                    except OSError:
                        pass

    def shutdown(self) -> None:
        for pid1 in list(self.workers):
            self.kill(pid1)
        while self.workers:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                break
            if info is not None and info.si_pid not in self.workers:
                os.waitpid(info.si_pid, 0)
                continue
            self.reap()
        for spec in list(self.workers.values()):
            self._cleanup(spec)


def main() -> None:
    if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]  # the snippet must not import the harness's modules by accident
    cfg = json.loads(sys.argv[1])
    ctrl = socket.socket(fileno=cfg["ctrl_fd"])
    facts = _enter_namespaces(cfg)
    try:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
    except OSError:
        pass
    for name in cfg["preload"]:
        importlib.import_module(name)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()  # its first call imports and builds much: not in every worker
    gc.collect()
    gc.freeze()  # keep the collector from writing to (and so copying) every inherited page in each worker
    facts["pid_namespace"] = bool(cfg["namespaces"]) and _probe_pid_namespace()
    facts["uid_drop"] = (
        os.geteuid() == 0
        and not facts["user_namespace"]
        and cfg["uid_base"] is not None
        and _probe_unprivileged(cfg["uid_base"])
    )
    Zygote(cfg, ctrl, facts).serve()


if __name__ == "__main__":
    main()
