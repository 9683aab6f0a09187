"""The sandbox's side: a zygote that imports the heavy modules once and forks one worker per session.

`tir_harness.sandbox.zygote` runs this file as a script (the harness never imports it), by a file descriptor
(`python /proc/self/fd/N CTRL`: no path of the harness in any process's command line), with a SOCK_SEQPACKET
control socket on fd CTRL whose first message is the JSON configuration.  Per session, the zygote forks:

    zygote ── W0: setsid, joins the worker's cgroups, unshares PID, mount, IPC, network and cgroup namespaces,
                  mounts the worker's private tmpfs, forks W1, exits
                 └─ W1: PID 1 of that namespace: mounts a fresh /proc, chroots into the view; only reaps,
                        and exits with W2's status (its name says whether W2 died of a signal)
                      └─ W2: limits itself, drops privileges, loads the seccomp filter, runs the snippets

Spawns are asynchronous: the zygote forks W0 and goes back to its loop, so several workers start at once
and the harness's pool is refilled in parallel.  The zygote is a child subreaper, so W1 becomes its child
when W0 exits: it alone reaps W1, which makes its kills race-free, and killing W1 makes the kernel kill
everything left in the namespace.  The worker's files live on a tmpfs mounted only in its own mount
namespace: when the namespace's last process is gone the kernel drops it, and the zygote never walks it.

Everything here is trusted only as far as the snippet cannot reach it: the harness enforces the limits
from outside (wall clock, kills, output cap, cgroups) and treats whatever W2 sends as untrusted.
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
import re
import resource
import select
import shutil
import signal
import socket
import struct
import sys
import traceback
import types
import warnings

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS = 38
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
_HEADER = struct.Struct("!I")
_PID = struct.Struct("=i")
_LIBC = ctypes.CDLL(None, use_errno=True)
# Request: nonce, call number, kind (0: run one cell live, 1: replay cells as the reference does), the number
# of texts, then the texts, length-prefixed.  Reply: magic, the request's nonce and number, status, completed,
# when the error happened, cells run, three totals, then nine length-prefixed strings.  Flat on purpose: the
# harness decodes it without recursion, and with a bound on every length (tir_harness.sandbox.protocol).
REQUEST = struct.Struct("!16sIBI")
REPLY = struct.Struct("!4s16sIBBBIQQQ")
MAGIC = b"TIR3"
STATUS_CODES = {"ok": 0, "error": 1, "memory": 2, "output_limit": 3}
WHEN_CODES = {"": 0, "compile": 1, "run": 2, "setup": 3}
KIND_RUN, KIND_REPLAY = 0, 1
_LEN = struct.Struct("!I")
# How a worker's view of the filesystem is laid out (paths inside the chroot).
SCRATCH = "/tmp"  # the worker's tmpfs: its working directory, HOME, TMPDIR, and /dev/shm


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


def _prctl(option: int, arg: int, arg3: int = 0) -> None:
    _check(_LIBC.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(arg3), ctypes.c_ulong(0), 0))


def _set_name(name: bytes) -> None:
    """This thread's name (`/proc/PID/comm`, at most 15 bytes)."""
    _check(_LIBC.prctl(ctypes.c_int(PR_SET_NAME), ctypes.c_char_p(name[:15]), ctypes.c_ulong(0), ctypes.c_ulong(0), 0))


# W1 renames itself `W1_SIGNALED + number` when W2 died of a signal: its exit code (128 + the signal) alone
# cannot tell `os._exit(152)` from a SIGXCPU kill.  The zygote reads the name off the zombie before reaping it.
W1_SIGNALED = b"tir-w1-sig"


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


# --------------------------------------------------------------------------------------------- frames


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def recv_request(sock: socket.socket) -> tuple[bytes, int, int, list[str]] | None:
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    body = _recv_exact(sock, _HEADER.unpack(header)[0])
    if body is None:
        return None
    nonce, n, kind, count = REQUEST.unpack_from(body)
    texts, at = [], REQUEST.size
    for _ in range(count):
        (size,) = _LEN.unpack_from(body, at)
        texts.append(body[at + _LEN.size : at + _LEN.size + size].decode("utf-8", "surrogatepass"))
        at += _LEN.size + size
    return nonce, n, kind, texts


def encode_reply(nonce: bytes, n: int, reply: dict) -> bytes:
    texts = [
        *reply["out"][:2], *reply["display"][:2], *reply["error"][:2],
        reply["error_line"], reply.get("error_type", ""), reply.get("error_message", ""),
    ]  # fmt: skip
    parts = [
        REPLY.pack(
            MAGIC,
            nonce,
            n,
            STATUS_CODES[reply["status"]],
            int(reply["completed"]),
            WHEN_CODES[reply.get("when", "")],
            reply.get("cells", 1),
            reply["out"][2],
            reply["display"][2],
            reply["error"][2],
        )
    ]
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        parts += [_LEN.pack(len(data)), data]
    body = b"".join(parts)
    return _HEADER.pack(len(body)) + body


# --------------------------------------------------------------------------------------------- worker (W2)


class OutputLimitExceeded(BaseException):
    """Raised into the snippet when it keeps printing far past the cap (BaseException: `except Exception`
    in the snippet must not swallow it)."""


class Capture(io.TextIOBase):
    """sys.stdout/sys.stderr for one cell: keeps the first and the last `limit` characters only."""

    def __init__(self, limit: int, abort: int, encoding: str | None = "utf-8") -> None:
        self._limit, self._abort, self._encoding = limit, abort, encoding
        self._head: list[str] = []
        self._head_len = 0
        self._tail: collections.deque[str] = collections.deque()
        self._tail_len = 0
        self.total = 0

    @property
    def encoding(self) -> str | None:  # type: ignore[override]
        return self._encoding  # None as a StringIO has it, for the reference's replay (IPython's capture)

    @property
    def aborted(self) -> bool:
        return self.total > self._abort

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

    def getvalue(self) -> str:
        """What was written so far (head and tail once past the cap), as a StringIO answers: IPython's capture,
        which the reference's replay used, is one."""
        head, tail, _ = self.piece()
        return head + tail

    def piece(self) -> list:
        """[head, tail, total]: the wire format of a possibly cut text (see execution.Text)."""
        tail = "".join(self._tail)[-self._limit :] if self._tail else ""
        return ["".join(self._head), tail, self.total]


def clip(text: str, limit: int, hidden: int = 0) -> list:
    """[head, tail, total] of `text`, of which `hidden` characters were already taken out of the middle."""
    return [text[:limit], text[max(limit, len(text) - limit) :], len(text) + hidden]


def concatenate(first: list, second: list, limit: int) -> list:
    """[head, tail, total] of the text of piece `first` followed by that of piece `second`."""
    (h1, t1, n1), (h2, t2, n2) = first, second
    whole1 = h1 + t1 if n1 == len(h1) + len(t1) else None
    whole2 = h2 + t2 if n2 == len(h2) + len(t2) else None
    if whole1 is not None and whole2 is not None:
        return clip(whole1 + whole2, limit)
    head = (whole1 + h2 if whole1 is not None else h1)[:limit]
    tail = (t1 + whole2 if whole2 is not None else t2)[-limit:]
    return [head, tail if n1 + n2 > limit else "", n1 + n2]


def safe_str(obj: object, limit: int) -> str:
    """str(obj) of an object the snippet made (its __str__ may fail), at most `limit` characters."""
    try:
        text = str(obj)
        return text if len(text) <= limit else text[: limit // 2] + text[-(limit - limit // 2) :]
    except BaseException:
        return ""


def clean_exit(exc: BaseException) -> bool:
    try:
        return isinstance(exc, SystemExit) and exc.code in (None, 0)
    except BaseException:  # a SystemExit subclass whose code misbehaves is just an error
        return False


def _shorten_messages(report: traceback.TracebackException, limit: int) -> int:
    """Cut the middle out of every message longer than 2 x `limit` in the report and its chain: only the
    first and last `limit` characters of the traceback reach the model, and formatting a 100 MB message
    several times over costs seconds of the call's time.  Returns how many characters were cut."""
    cut = 0
    seen: set[int] = set()
    todo = [report]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        # `_str` is the message as formatted (CPython 3.10 to 3.13); a SyntaxError (it has `msg`) is formatted
        # from other fields.
        message = None if "msg" in vars(item) else getattr(item, "_str", None)
        if isinstance(message, str) and len(message) > 2 * limit + 1:
            cut += len(message) - 2 * limit
            item._str = message[:limit] + message[-limit:]
        todo += [getattr(item, "__cause__", None), getattr(item, "__context__", None)]
        todo += list(getattr(item, "exceptions", None) or [])
    return cut


def describe(exc: BaseException, limit: int) -> tuple[str, str, str, int, str]:
    """(status, traceback, last line, characters cut out of the traceback's middle, message) for an exception
    the snippet raised."""
    if clean_exit(exc):
        return "ok", "", "", 0, ""
    if isinstance(exc, OutputLimitExceeded):
        return "output_limit", "", "", 0, ""
    status = "memory" if isinstance(exc, MemoryError) else "error"
    message = ""
    try:
        report = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
        cut = _shorten_messages(report, limit)
        message = safe_str(exc.msg, limit) if isinstance(exc, SyntaxError) else getattr(report, "_str", "")[:limit]
        # The harness's own frames (exec, our stdout) are noise to the model; a syntax error has none.
        frames = [] if isinstance(exc, SyntaxError) else [f for f in report.stack if f.filename != __file__]
        report.stack = traceback.StackSummary.from_list(frames)
        text = "".join(report.format())
        end = text.rstrip("\n")
        last = end[end.rfind("\n", max(0, len(end) - limit)) + 1 :][-limit:]
    except BaseException:  # the snippet's __str__ may itself fail; the type name is always there
        text = last = type(exc).__name__
        cut = 0
    return status, text, last, cut, message if isinstance(message, str) else ""


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
            request = recv_request(self.sock)
            if request is None:
                return
            nonce, n, kind, texts = request
            reply = self.replay(texts, n) if kind == KIND_REPLAY else self.run(texts[0], n)
            self.sock.sendall(encode_reply(nonce, n, reply))

    def _execute(self, code: str, filename: str) -> str:
        self.compiled = False
        tree = ast.parse(code, filename)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        program = compile(tree, filename, "exec")
        self.compiled = True
        exec(program, self.ns)
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
        status, display, error, last, cut, completed, message = "ok", "", "", "", 0, True, ""
        when, kind = "", ""
        try:
            display = self._execute(code, f"<cell-{n}>")
        except BaseException as exc:  # whatever the snippet does is an observation, never our exit
            if os.getpid() != self.pid:
                os._exit(0)
            completed = clean_exit(exc)
            status, error, last, cut, message = describe(exc, self.limit)
            if status in ("error", "memory"):
                when, kind = ("run" if self.compiled else "compile"), type(exc).__name__
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
            "when": when,
            "out": out,
            "display": clip(display, self.limit),
            "error": clip(error, self.limit, cut),
            "error_line": last,
            "error_type": kind[: self.limit],
            "error_message": message,
        }

    def replay(self, blocks: list[str], n: int) -> dict:
        """Every block of a conversation, as the reference's executor runs them (tir_harness/sandbox/reference.py):
        pasted into \"\"\" string literals of one program (so their escapes are interpreted first), refused if
        that program mentions `input(` or `os.system(`, then one `run_cell` each in a fresh IPython shell with
        warnings off; the reply is what the last block wrote (stdout, then stderr) and its error.  The worker
        is not used again afterwards."""
        self._arm_cpu()
        empty = clip("", 0)
        reply = {"n": n, "status": "ok", "completed": True, "when": "", "cells": len(blocks), "out": empty,
                 "display": empty, "error": empty, "error_line": "", "error_type": "", "error_message": ""}  # fmt: skip
        pasted = [block.replace('"""', '\\"\\"\\"') for block in blocks]
        if any(_REFUSED.search(text) for text in pasted):
            return dict(reply, status="error", completed=False, when="setup", error_type="RuntimeError",
                        error_line="RuntimeError")  # fmt: skip
        try:
            nul = next((text for text in pasted if "\x00" in text), None)
            if nul is not None:  # the program is compiled as a whole: a NUL anywhere fails it first
                ast.literal_eval('"""' + nul + '"""')
            cells = [ast.literal_eval('"""' + text + '"""') for text in pasted]
        except Exception as exc:
            line = "".join(traceback.format_exception_only(type(exc), exc)).split("\n")[-2]
            return dict(reply, status="error", completed=False, when="setup", error_type=type(exc).__name__,
                        error_line=line[: self.limit], error_message=safe_str(exc, self.limit))  # fmt: skip
        warnings.filterwarnings("ignore")
        os.environ["OPENBLAS_NUM_THREADS"] = "16"
        shell = _new_shell()
        result, out, err = None, Capture(0, self.abort, None), Capture(0, self.abort, None)
        saved = sys.stdout, sys.stderr
        for cell in cells:
            out, err = Capture(self.limit, self.abort, None), Capture(self.limit, self.abort, None)
            sys.stdout, sys.stderr = out, err
            escaped: BaseException | None = None
            try:
                result = shell.run_cell(cell)
            except BaseException as exc:  # IPython catches what a cell raises; this is what escapes it
                escaped = exc
            if os.getpid() != self.pid:
                os._exit(0)  # a fork made by the snippet came back here: it must never speak the protocol
            sys.stdout, sys.stderr = saved
            if out.aborted or err.aborted or escaped is not None:
                stopped = out.aborted or err.aborted or isinstance(escaped, OutputLimitExceeded)
                return dict(reply, status="output_limit" if stopped else "error", completed=False,
                            out=concatenate(out.piece(), err.piece(), self.limit),
                            when="" if stopped else "run", error_type=type(escaped).__name__ if escaped else "",
                            error_message=safe_str(escaped, self.limit) if escaped else "")  # fmt: skip
        reply["out"] = concatenate(out.piece(), err.piece(), self.limit)
        if result is None:
            return dict(reply, status="error", completed=False)  # no block at all: the reference's NameError
        error, when = result.error_in_exec, "run"
        if error is None:
            error, when = result.error_before_exec, "compile"
        if error is not None:
            status = "memory" if isinstance(error, MemoryError) else "error"
            reply.update(status=status, completed=False, when=when, error_type=type(error).__name__[: self.limit],
                         error_message=safe_str(error, self.limit))  # fmt: skip
        if reply["status"] == "ok" and reply["out"][2] > self.limit:
            reply["status"] = "output_limit"
        return reply


# The reference's refusal, searched in its whole program before it runs: `input(` or `os.system(` anywhere (its
# patterns' optional prefix matches nothing, and `.` is any character).
_REFUSED = re.compile(r"input\(|os.system\(")


def _new_shell() -> object:
    """A fresh IPython shell, as the reference makes one (its history kept in memory: no file, no thread)."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    return InteractiveShell(config=config)


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


def setup_worker(cfg: dict, spec: dict, drop: bool, seccomp: ctypes.Array | None) -> None:
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
    if not spec["cgroups"].get("pids"):  # RLIMIT_NPROC counts every task of the real uid: exact for its own uid
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
    if seccomp is not None:  # last: the filter refuses some of the calls above
        _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(seccomp))
    if "numpy" in sys.modules:  # a fresh process would not share its random state with the other sessions
        sys.modules["numpy"].random.seed()


# --------------------------------------------------------------------------------------------- seccomp

# Calls math code never makes and that widen what a snippet can reach: namespaces and mounts (a new user
# namespace gives full capabilities over a fresh set of kernel objects), other processes' memory, the
# kernel keyring, BPF, io_uring, userfaultfd, perf, modules, clocks and the like.  docs/executor.md lists
# them with their reasons.  They fail with EPERM, as an unprivileged process would see them fail.
DENIED = (
    "unshare setns mount umount2 pivot_root chroot open_tree move_mount fsopen fsconfig fsmount fspick "
    "mount_setattr ptrace process_vm_readv process_vm_writev kcmp pidfd_getfd keyctl add_key request_key "
    "bpf userfaultfd perf_event_open io_uring_setup io_uring_enter io_uring_register fanotify_init "
    "init_module finit_module delete_module kexec_load kexec_file_load reboot swapon swapoff acct quotactl "
    "quotactl_fd syslog iopl ioperm settimeofday clock_settime clock_adjtime adjtimex sethostname setdomainname "
    "open_by_handle_at name_to_handle_at lookup_dcookie uselib vhangup personality"
).split()
# The read-only view is shared by every session: a lock or a watch on one of its files would be seen by the
# others (one session holds flock(LOCK_EX) on /usr/bin/env, another finds it taken).  So no flock, no inotify,
# and of fcntl no lock test (F_GETLK, F_OFD_GETLK) and no directory notification (F_NOTIFY).  Record locks
# themselves stay (sqlite): on a file a session may only read, it can place only read locks, which no other
# session can see without a lock test.
DENIED_SHARED_FILES = "flock inotify_init inotify_init1 inotify_add_watch".split()
F_GETLK, F_OFD_GETLK, F_NOTIFY = 5, 36, 1026
# Without network the only sockets left are Unix ones: no bind/connect means no filesystem socket and no
# abstract name of the snippet's choosing; socketpair (multiprocessing's pipes) still works.  The kernel still
# names a datagram socket that sends with SO_PASSCRED (autobind): each session's own network namespace is what
# keeps that name, and everything else in /proc/net, from the other sessions.
DENIED_WITHOUT_NETWORK = "bind connect listen accept accept4".split()
NAMESPACE_FLAGS = (
    CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def build_seccomp(network: bool) -> tuple[ctypes.Structure | None, str]:
    """The filter as a loadable `sock_fprog` (compiled once here, loaded by each W2 with one prctl), and
    what happened: "libseccomp" or the reason there is none."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        return None, "no libseccomp.so.2"
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    allow, eperm, enosys, equal, masked_eq = 0x7FFF0000, 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS, 4, 7
    ctx = lib.seccomp_init(allow)
    if not ctx:
        return None, "seccomp_init failed"
    try:
        names = DENIED + DENIED_SHARED_FILES + ([] if network else DENIED_WITHOUT_NETWORK)
        for name in names:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr >= 0 and lib.seccomp_rule_add_array(ctx, eperm, nr, 0, None) != 0:
                return None, f"seccomp_rule_add({name}) failed"
        clone = lib.seccomp_syscall_resolve_name(b"clone")
        for flag in NAMESPACE_FLAGS:  # clone's flags are its first argument: refuse any new namespace
            cmp = _ArgCmp(0, masked_eq, flag, flag)
            if lib.seccomp_rule_add_array(ctx, eperm, clone, 1, ctypes.byref(cmp)) != 0:
                return None, "seccomp_rule_add(clone) failed"
        fcntl = lib.seccomp_syscall_resolve_name(b"fcntl")
        for command in (F_GETLK, F_OFD_GETLK, F_NOTIFY):  # fcntl's command is its second argument
            cmp = _ArgCmp(1, equal, command, 0)
            if lib.seccomp_rule_add_array(ctx, eperm, fcntl, 1, ctypes.byref(cmp)) != 0:
                return None, "seccomp_rule_add(fcntl) failed"
        # clone3 passes its flags in memory, which a filter cannot read: ENOSYS makes libc fall back to clone.
        clone3 = lib.seccomp_syscall_resolve_name(b"clone3")
        if clone3 >= 0 and lib.seccomp_rule_add_array(ctx, enosys, clone3, 0, None) != 0:
            return None, "seccomp_rule_add(clone3) failed"
        r, w = os.pipe()
        try:
            if lib.seccomp_export_bpf(ctx, w) != 0:
                return None, "seccomp_export_bpf failed"
            os.close(w)
            w = -1
            code = b""
            while chunk := os.read(r, 65536):
                code += chunk
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
    finally:
        lib.seccomp_release(ctx)
    buffer = ctypes.create_string_buffer(code, len(code))
    prog = _Fprog(len(code) // 8, ctypes.addressof(buffer))
    prog._buffer = buffer  # type: ignore[attr-defined]  # keeps the instructions alive with the program
    return prog, "libseccomp"


# --------------------------------------------------------------------------------------------- the view


def _python_paths() -> list[str]:
    paths = {sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(p for p in sys.path if p and os.path.isdir(p))
    return sorted({os.path.realpath(p) for p in paths})


def _expose(targets: list[str], directory: str = "/") -> list[str]:
    """Without a view: let unprivileged uids reach `targets` (the interpreter may live in a 0700 home):
    each directory on the way that others may not search is covered by a tmpfs that holds only bind
    mounts of the ways on.  Returns the covered directories."""
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


def _site_dirs() -> list[str]:
    import site

    dirs = set(site.getsitepackages()) | {site.getusersitepackages()}
    dirs.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    return sorted({os.path.realpath(d) for d in dirs if os.path.isdir(d)}, key=len, reverse=True)


def _needed_entries() -> dict[str, set[str]]:
    """Site directory -> the top-level entries (package folders, modules) of every module loaded now:
    the preloaded libraries and what they imported.  Nothing else of site-packages is needed."""
    sites = _site_dirs()
    needed: dict[str, set[str]] = {}
    for module in list(sys.modules.values()):
        for path in [getattr(module, "__file__", None), *list(getattr(module, "__path__", []) or [])]:
            if not isinstance(path, str):
                continue
            real = os.path.realpath(path)
            for site_dir in sites:
                if real.startswith(site_dir + "/"):
                    entry = os.path.relpath(real, site_dir).split("/")[0]
                    if not entry.startswith("__editable__") and entry != "__pycache__":
                        needed.setdefault(site_dir, set()).add(entry)
                    break
    for site_dir, entries in needed.items():  # compiled libraries some wheels keep beside the package
        for entry in list(entries):
            if os.path.isdir(os.path.join(site_dir, entry + ".libs")):
                entries.add(entry + ".libs")
    return needed


def _below_scratch(path: str) -> bool:
    return path.startswith(SCRATCH + "/")


class _View:
    """Builds the read-only root the workers chroot into, inside the zygote's private mount namespace."""

    def __init__(self, root: str) -> None:
        self.root = root
        # What the view holds below SCRATCH (an interpreter or virtualenv under /tmp): each worker's tmpfs is
        # mounted over SCRATCH and hides it, so W0 lays it again on that tmpfs: (source, target) for a bind,
        # (path, None) for a symlink.
        self.under_scratch: list[tuple[str, str | None]] = []

    def inside(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def lay_again(self, entries: list[tuple[str, str | None]]) -> None:
        """Repeat binds and symlinks of `under_scratch` (in W0, on the worker's fresh tmpfs)."""
        for source, target in entries:
            if target is None:
                self.copy_symlink(source)
            else:
                self.bind(source, target)

    def makedirs(self, path: str) -> None:
        os.makedirs(self.inside(path), mode=0o755, exist_ok=True)

    def bind(self, source: str, target: str | None = None, device: bool = False) -> None:
        """Read-only bind of a file or directory at the same path (or `target`) in the view."""
        target = target or source
        if _below_scratch(target):
            self.under_scratch.append((source, target))
        target = self.inside(target)
        if os.path.isdir(source):
            os.makedirs(target, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            if not os.path.exists(target):
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
        _mount(source, target, None, MS_BIND, None)
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | (0 if device else MS_NODEV)
        _mount(None, target, None, flags, None)

    def copy_symlink(self, path: str) -> None:
        if _below_scratch(path):
            self.under_scratch.append((path, None))
        os.makedirs(os.path.dirname(self.inside(path)), mode=0o755, exist_ok=True)
        if not os.path.lexists(self.inside(path)):
            os.symlink(os.readlink(path), self.inside(path))

    def empty_dir(self, path: str) -> None:
        """Hide what a bound directory holds at `path` under a small tmpfs (made read-only by `seal`)."""
        self.makedirs(path)
        _mount("tmpfs", self.inside(path), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k,nr_inodes=4096")
        self.sealed.append(self.inside(path))

    def build(self) -> list[str]:
        """Mount the view; returns the host paths it exposes (for the manifest)."""
        self.sealed: list[str] = [self.root]
        exposed: list[str] = []
        os.makedirs(self.root, exist_ok=True)
        _mount("tmpfs", self.root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m,nr_inodes=8192")
        for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr"):
            path = "/" + name
            if os.path.islink(path):
                self.copy_symlink(path)
            elif os.path.isdir(path):
                self.bind(path)
                exposed.append(path)
        for path in ("/etc/ld.so.cache", "/etc/localtime", "/etc/mime.types"):
            if os.path.isfile(path):
                self.bind(os.path.realpath(path), path)
                exposed.append(path)
        self.makedirs("/dev")
        for name in ("null", "zero", "full", "random", "urandom"):
            self.bind(f"/dev/{name}", device=True)
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                             ("stderr", "/proc/self/fd/2"), ("shm", SCRATCH)):
            os.symlink(target, self.inside(f"/dev/{name}"))
        self.makedirs("/proc")
        self.makedirs(SCRATCH)
        # The interpreter: its standard library (without the base site-packages) and the executable.
        stdlib = os.path.dirname(os.__file__)
        lib_dir = os.path.dirname(stdlib)  # <prefix>/lib: the stdlib and libpython
        if not self._covered(lib_dir, exposed):
            self.bind(lib_dir)
            exposed.append(lib_dir)
        executable = os.path.realpath(sys.executable)
        if not self._covered(os.path.dirname(executable), exposed):
            self.bind(executable)
            exposed.append(executable)
        path = sys.executable
        while os.path.islink(path):  # e.g. .venv/bin/python -> the base interpreter
            self.copy_symlink(path)
            path = os.path.join(os.path.dirname(path), os.readlink(path))
        cfg = os.path.join(sys.prefix, "pyvenv.cfg")
        if os.path.isfile(cfg):
            self.bind(cfg)
        for site_dir in _site_dirs():
            if self._covered(site_dir, exposed) or os.path.isdir(self.inside(site_dir)):
                self.empty_dir(site_dir)  # hide whatever else the bound tree holds there
        for site_dir, entries in sorted(_needed_entries().items()):
            if not os.path.isdir(self.inside(site_dir)):
                self.makedirs(site_dir)
            for entry in sorted(entries):
                source = os.path.join(site_dir, entry)
                self.bind(source)
                exposed.append(source)
        for path in reversed(self.sealed):  # mount points exist now: nothing may add to the view
            _mount(None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
        return exposed

    @staticmethod
    def _covered(path: str, exposed: list[str]) -> bool:
        return any(path == e or path.startswith(e.rstrip("/") + "/") for e in exposed)


def _report_error(w: int, text: str) -> None:
    data = text[:500].encode()
    os.write(w, b"E" + _PID.pack(len(data)) + data)


# --------------------------------------------------------------------------------------------- zygote


def _enter_namespaces(cfg: dict) -> dict:
    """Network (and for non-root, user) namespace for the zygote and hence every worker: done once,
    before importing numpy, because unshare(CLONE_NEWUSER) needs a single-threaded process."""
    facts = {"network_namespace": False, "user_namespace": False, "hidden_dirs": [], "mount_namespace": False}
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
            facts["mount_namespace"] = True
        except OSError:
            pass
    return facts


def _probe_unprivileged(uid: int, paths: list[str], view: str | None) -> bool:
    """Can a worker that drops to `uid` still import from the standard library (in its view)?"""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            if view:
                os.chroot(view)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            code = 0 if all(os.access(p, os.R_OK | os.X_OK) for p in paths) else 1
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


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


def _probe_worker_namespaces(view: str | None, network: bool) -> int:
    """The namespaces a worker can get besides PID, where allowed: mount (with its tmpfs), IPC, cgroup, and
    without `network` its own network namespace (abstract Unix sockets, netlink and /proc/net are per
    network namespace: one shared by all workers would let sessions find and reach each other)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        flags = 0
        for flag in (CLONE_NEWIPC, CLONE_NEWNS, CLONE_NEWCGROUP) + (() if network else (CLONE_NEWNET,)):
            try:
                _unshare(flag)
                flags |= flag
            except OSError:
                pass
        if flags & CLONE_NEWNS and view:
            try:
                _mount("tmpfs", os.path.join(view, SCRATCH.lstrip("/")), "tmpfs", MS_NOSUID | MS_NODEV, "size=1m")
            except OSError:
                flags &= ~CLONE_NEWNS
        os.write(w, _PID.pack(flags))
        os._exit(0)
    os.close(w)
    data = os.read(r, 4)
    os.close(r)
    os.waitpid(pid, 0)
    return _PID.unpack(data)[0] if len(data) == 4 else 0


class Zygote:
    """Serves spawn/kill/shutdown requests from the harness and reports each worker's end."""

    def __init__(self, cfg: dict, ctrl: socket.socket, facts: dict) -> None:
        self.cfg, self.ctrl, self.facts = cfg, ctrl, facts
        self.workers: dict[int, dict] = {}  # W1 pid -> spec (+ "pid2")
        self.starting: dict[int, dict] = {}  # fd of a W0's report pipe -> spawn state
        self.starters: dict[int, int] = {}  # W0 pid -> fd of its report pipe
        self.unclaimed: dict[int, int] = {}  # W1s reaped before their W0's report was read: pid -> status
        self.leftover_cgroups: list[str] = []
        self.drop = facts["uid_drop"]
        self.view = facts.get("view_root")
        self.seccomp = facts.pop("_seccomp", None)
        self.under_scratch = facts.pop("_under_scratch", [])
        self.cgroups = {c: p for c, p in cfg["cgroups"].items() if p}
        if self.drop:
            self.cgroups.pop("pids", None)  # the uid's RLIMIT_NPROC is exact, and an attach less is cheaper
        if self.cgroups.get("pids"):
            facts["process_limit"] = "pids_cgroup_v1"
        elif self.drop:
            facts["process_limit"] = "rlimit_nproc_per_worker_uid"
        elif os.geteuid() == 0 and not facts["user_namespace"]:
            facts["process_limit"] = "none"  # RLIMIT_NPROC does not bind root
        else:
            facts["process_limit"] = "rlimit_nproc_shared_uid"
        facts["cgroups"] = sorted(self.cgroups)
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
            try:
                readable = select.select([self.ctrl, self.wake_r, *self.starting], [], [], 1.0)[0]
            except InterruptedError:
                readable = []
            if self.wake_r in readable:
                while True:
                    try:
                        if not os.read(self.wake_r, 512):
                            break
                    except BlockingIOError:
                        break
            for fd in readable:
                if fd in self.starting:
                    self._read_report(fd)
            self.reap()
            self._retry_cgroups()
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
        name = msg["spec"]["name"]
        spec = dict(msg["spec"], workdir=SCRATCH if self.view else os.path.join(self.cfg["base_dir"], name))
        spec["cgroups"] = {c: os.path.join(p, spec["name"]) for c, p in self.cgroups.items()}
        try:
            if not self.view:
                os.mkdir(spec["workdir"], 0o700)
                if self.drop:
                    os.chown(spec["workdir"], spec["uid"], spec["uid"])
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
        os.set_blocking(r, False)
        self.starting[r] = {"id": msg["id"], "spec": spec, "data": b"", "pid0": pid0}
        self.starters[pid0] = r

    def _read_report(self, r: int) -> None:
        """Read what W0, W1 and W2 wrote so far; on EOF (all three done) answer the spawn request."""
        state = self.starting[r]
        while True:
            try:
                chunk = os.read(r, 4096)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk or len(state["data"]) > 8192:
                self._finish_spawn(r)
                return
            state["data"] += chunk
            pids, _ = self._parse(state["data"])
            if "1" in pids and pids["1"] not in self.workers and "pid1" not in state:
                state["pid1"] = pids["1"]  # known before W1 can be reaped: see reap()
                state["spec"]["pid1"] = pids["1"]
                self.workers[pids["1"]] = state["spec"]

    def _finish_spawn(self, r: int) -> None:
        state = self.starting.pop(r)
        os.close(r)
        spec = state["spec"]
        pids, error = self._parse(state["data"])
        pid1 = pids.get("1")
        if pid1 is not None and pid1 not in self.workers and pid1 not in self.unclaimed:
            self.workers[pid1] = spec
        spec["pid2"] = pids.get("2")
        if error or "2" not in pids:
            if pid1 is not None:
                self.kill(pid1)
            elif not self.view:
                self._cleanup(spec)
            self.send({"op": "spawned", "id": state["id"], "error": error or "the worker did not start"})
        else:
            self.send({"op": "spawned", "id": state["id"], "pid1": pid1, "pid2": pids["2"]})
        if pid1 in self.unclaimed:  # it ended before we knew it
            self._ended(pid1, spec, self.unclaimed.pop(pid1))

    @staticmethod
    def _parse(data: bytes) -> tuple[dict[str, int], str]:
        pids: dict[str, int] = {}
        error = ""
        while len(data) >= 5:  # records: tag, int32 (a pid, or the length of an error text that follows)
            tag, value = data[:1].decode(errors="replace"), _PID.unpack(data[1:5])[0]
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
            for fd in (r, self.wake_r, self.wake_w, *self.starting):
                os.close(fd)
            os.setsid()
            cg = spec["cgroups"]
            for controller, path in cg.items():
                os.mkdir(path)
                if controller == "memory":
                    limit = (self.cfg["memory_mb"] + self.cfg["disk_mb"] + 64) * 1024 * 1024
                    _write(os.path.join(path, "memory.limit_in_bytes"), str(limit))
                    try:  # without swap accounting, the limit would only push the excess to swap
                        _write(os.path.join(path, "memory.swappiness"), "0")
                    except OSError:
                        pass
                    if os.path.exists(os.path.join(path, "memory.memsw.limit_in_bytes")):
                        _write(os.path.join(path, "memory.memsw.limit_in_bytes"), str(limit))
                elif controller == "pids":
                    _write(os.path.join(path, "pids.max"), str(self.cfg["max_processes"]))
            for path in cg.values():
                _write(os.path.join(path, "cgroup.procs"), "0")
            flags = (CLONE_NEWPID if self.facts["pid_namespace"] else 0) | self.facts["worker_namespaces"]
            if flags:
                _unshare(flags)
            if self.view:
                uid = spec["uid"]
                options = f"size={self.cfg['disk_mb']}m,nr_inodes={self.cfg['max_files']},mode=0700,uid={uid},gid={uid}"
                _mount("tmpfs", os.path.join(self.view, SCRATCH.lstrip("/")), "tmpfs", MS_NOSUID | MS_NODEV, options)
                if self.under_scratch:
                    _View(self.view).lay_again(self.under_scratch)
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
            if self.view:
                _mount("proc", os.path.join(self.view, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
            pid2 = os.fork()
            if pid2 == 0:
                self._w2(spec, sock_fd, w)
            if self.view:  # W2 read its host pid first; from now on no process here sees the host's root
                os.chroot(self.view)
                os.chdir("/")
            os.close(w)
            os.close(sock_fd)
            while True:  # as PID 1 we inherit the namespace's orphans: reap them until W2 is gone
                pid, status = os.waitpid(-1, 0)
                if pid == pid2:
                    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
                    code = 128 + sig if sig else os.waitstatus_to_exitcode(status)
                    if sig:
                        _set_name(W1_SIGNALED + str(sig).encode())
                    break
        except BaseException as exc:
            try:
                _report_error(w, f"W1: {exc!r}")
            except OSError:
                pass
        finally:
            os._exit(code)

    def _w2(self, spec: dict, sock_fd: int, w: int) -> None:
        try:
            outer_pid = int(os.readlink("/proc/self"))  # the host's /proc: the pid the harness sees
            if self.view:
                os.chroot(self.view)
            os.closerange(3, min(sock_fd, w))
            os.closerange(max(sock_fd, w) + 1, 1 << 16)
            os.closerange(min(sock_fd, w) + 1, max(sock_fd, w))
            setup_worker(self.cfg, spec, self.drop, self.seccomp)
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
        try:
            os.kill(pid1, signal.SIGKILL)
        except OSError:
            pass
        if not self.facts["pid_namespace"] and spec.get("pid2"):
            try:
                os.killpg(spec["pid2"], signal.SIGKILL)
            except OSError:
                pass
        self._kill_cgroup(spec)

    def _kill_cgroup(self, spec: dict) -> None:
        freezer = spec["cgroups"].get("freezer")
        if freezer:  # a frozen task cannot die: thaw after the SIGKILL is queued
            try:
                _write(os.path.join(freezer, "freezer.state"), "THAWED")
            except OSError:
                pass
        if self.facts["pid_namespace"]:
            return  # the kernel kills the whole namespace with its PID 1
        for path in spec["cgroups"].values():
            for _ in range(100):  # a fork bomb may add processes while we kill: repeat until empty
                try:
                    with open(os.path.join(path, "cgroup.procs")) as f:
                        pids = [int(p) for p in f.read().split()]
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            break

    def reap(self) -> None:
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            if pid in self.starters:  # a W0: it wrote W1's pid before it ended
                r = self.starters.pop(pid)
                if r in self.starting:
                    self._read_report(r)
            status = {"code": info.si_status, "why": info.si_code}
            signal_number = _signal_of_w2(pid)  # read off the zombie, before it is reaped
            if signal_number:
                status["signal"] = signal_number
            spec = self.workers.pop(pid, None)
            if spec is not None:
                # W1 is still an unreaped zombie here, so W2's process group id cannot be reused yet.
                if not self.facts["pid_namespace"] and spec.get("pid2"):
                    try:
                        os.killpg(spec["pid2"], signal.SIGKILL)
                    except OSError:
                        pass
                self._kill_cgroup(spec)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            if spec is not None:
                self._ended(pid, spec, status)
            elif pid not in self.starters and any(s.get("pid1") is None for s in self.starting.values()):
                self.unclaimed[pid] = status

    def _ended(self, pid1: int, spec: dict, status: dict) -> None:
        memory = spec["cgroups"].get("memory")
        if memory:  # read before the group goes: did its limit kill a process?
            try:
                with open(os.path.join(memory, "memory.oom_control")) as f:
                    status["oom"] = any(
                        line.startswith("oom_kill ") and line.split()[1] != "0" for line in f
                    )
            except OSError:
                pass
        self._cleanup(spec)
        if "pid2" in spec:  # the harness knows this worker: tell it how it ended
            self.send({"op": "exit", "pid": pid1, **status})

    def _cleanup(self, spec: dict) -> None:
        if not self.view:  # with a view the files are on the worker's own tmpfs, gone with its namespace
            shutil.rmtree(spec["workdir"], ignore_errors=True)
            if os.path.exists(spec["workdir"]):
                self.send({"op": "log", "text": f"could not remove {spec['workdir']}"})
        for path in spec["cgroups"].values():
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError:
                self.leftover_cgroups.append(path)

    def _retry_cgroups(self) -> None:
        leftover, self.leftover_cgroups = self.leftover_cgroups, []
        for path in leftover:
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError:
                self.leftover_cgroups.append(path)

    def shutdown(self) -> None:
        for pid1 in list(self.workers):
            self.kill(pid1)
        while self.workers or self.starting:
            for r in list(self.starting):
                os.set_blocking(r, True)
                self._read_report(r) if r in self.starting else None
                for pid1 in list(self.workers):
                    self.kill(pid1)
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
        _drain_children()
        for _ in range(50):
            self._retry_cgroups()
            if not self.leftover_cgroups:
                break
            select.select([], [], [], 0.02)  # a cgroup emptied a moment ago may still be busy


def _signal_of_w2(pid1: int) -> int:
    """The signal that killed W2, from the name its W1 (a zombie, not yet reaped) gave itself; 0 if none."""
    try:
        with open(f"/proc/{pid1}/comm", "rb") as f:
            name = f.read().strip()
    except OSError:
        return 0
    number = name[len(W1_SIGNALED) :]
    return int(number) if name.startswith(W1_SIGNALED) and number.isdigit() else 0


def _children() -> list[int]:
    pids: list[int] = []
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return pids
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            pass
    return pids


def _drain_children(rounds: int = 250) -> None:
    """Kill and reap every process still parented here, for at most `rounds` x 20 ms.

    The zygote is a child subreaper: what a worker started and left behind (a setsid'd child, a process
    SIGKILLed a moment ago and still dying) becomes the zygote's child.  The harness's close() returns when
    the zygote has exited, so the zygote must not exit while one of them still runs.
    """
    for _ in range(rounds):
        for pid in _children():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return  # no child left at all
        select.select([], [], [], 0.02)


# Cells that make a fresh IPython shell import what it imports only when first needed (tracebacks, syntax
# errors, the pretty printer, warnings): run once in a child of the zygote, whose new modules the zygote then
# imports, so that every replay finds them loaded (and the read-only view holds their packages).
_WARM_CELLS = (
    "x = 1", "1 + 1", "print('a')", "[0] * 40", "{2, 1}", "1 / 0", "print(", "import sys\nsys.exit(0)",
    "import warnings\nwarnings.warn('w')", "import sympy\nsympy.Symbol('x') ** 2", "import numpy\nnumpy.arange(3)",
)  # fmt: skip


def _warm_shell(base_dir: str) -> None:
    before = set(sys.modules)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            os.environ["IPYTHONDIR"] = os.path.join(base_dir, "ipython-warm")
            sys.stdout = sys.stderr = io.StringIO()
            shell = _new_shell()
            for cell in _WARM_CELLS:
                shell.run_cell(cell)  # type: ignore[attr-defined]
            names = "\n".join(sorted(set(sys.modules) - before)).encode()
            while names:
                names = names[os.write(w, names[: 1 << 16]) :]
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    data = b""
    while chunk := os.read(r, 1 << 16):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    shutil.rmtree(os.path.join(base_dir, "ipython-warm"), ignore_errors=True)
    for name in data.decode().split():
        try:
            importlib.import_module(name)
        except Exception:  # a module that imports only inside a shell; the replay imports it then
            pass


def main() -> None:
    if sys.path and not getattr(sys.flags, "safe_path", False):
        del sys.path[0]  # this script's directory: the snippet must not import the harness's modules by accident
    os.close(int(sys.argv[0].rsplit("/", 1)[1]))  # /proc/self/fd/N: this script, opened by the harness
    ctrl = socket.socket(fileno=int(sys.argv[1]))
    cfg = json.loads(ctrl.recv(1 << 20))
    facts = _enter_namespaces(cfg)
    try:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
    except OSError:
        pass
    for name in cfg["preload"]:
        importlib.import_module(name)
    if cfg.get("reference_shell"):
        _warm_shell(cfg["base_dir"])
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()  # its first call imports and builds much: not in every worker
    facts["pid_namespace"] = bool(cfg["namespaces"]) and _probe_pid_namespace()
    facts["view_root"] = None
    facts["view"] = []
    if facts["mount_namespace"]:
        root = os.path.join(cfg["base_dir"], "view")
        try:
            view = _View(root)
            facts["view"] = view.build()
            facts["view_root"] = root
            facts["_under_scratch"] = view.under_scratch
        except OSError as exc:
            facts["view_error"] = repr(exc)
    if facts["view_root"] is None and facts["mount_namespace"]:
        try:
            facts["hidden_dirs"] = _expose(_python_paths())
        except OSError:
            pass
    facts["worker_namespaces"] = (
        _probe_worker_namespaces(facts["view_root"], cfg["network"]) if cfg["namespaces"] else 0
    )
    if not facts["worker_namespaces"] & CLONE_NEWNS:
        facts["view_root"] = None
    facts["ipc_namespace"] = bool(facts["worker_namespaces"] & CLONE_NEWIPC)
    facts["uid_drop"] = (
        os.geteuid() == 0
        and not facts["user_namespace"]
        and cfg["uid_base"] is not None
        and _probe_unprivileged(
            cfg["uid_base"],
            [os.path.dirname(os.__file__), sys.executable] if facts["view_root"] else _python_paths(),
            facts["view_root"],
        )
    )
    prog, how = build_seccomp(cfg["network"]) if cfg["namespaces"] else (None, "off (isolation='basic')")
    facts["seccomp"] = how if prog is not None else f"none: {how}"
    facts["_seccomp"] = prog
    gc.collect()
    gc.freeze()  # keep the collector from writing to (and so copying) every inherited page in each worker
    Zygote(cfg, ctrl, facts).serve()


if __name__ == "__main__":
    main()
