"""Sessions are isolated from each other, not only from the host (issue "never hang, never lie").

One test per channel class a hostile batch found between sessions of one executor: an abstract Unix socket
name, an autobound datagram socket found in /proc/net/unix, file descriptors passed over such a channel,
files of a closed session kept that way, netlink; and the faults found beside them: idle children's memory
never measured, close() lost while run() waits for a worker, the output cap broken by surrogate escaping,
`os._exit(152)` reported as a CPU time-out, a half-closed protocol socket costing a fixed wait, and
/proc/self/cmdline and /proc/self/cgroup showing the harness's paths and pid.

Every wait has a timeout far above any load (`within`, `PATIENT`); no bound depends on the machine's speed.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.test_executor_hostile import HANG, PATIENT, within
from tir_harness.sandbox.executor import Executor, Observation, Session
from tir_harness.sandbox.zygote import WORKER_SCRIPT

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def ex() -> Iterator[Executor]:
    with Executor(timeout=PATIENT, max_output_chars=2000) as executor:
        _ = executor.isolation
        yield executor


def run(session: Session, code: str) -> Observation:
    return within(PATIENT + HANG, lambda: session.run(code))


# ------------------------------------------------------------------------------------------ channels

# Session A's socket: a datagram socket with SO_PASSCRED gets an abstract name (autobind) when it first sends,
# even where bind() is refused; anyone in the same network namespace can then send to it.
AUTOBIND = (
    "import socket\n"
    "mine = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
    "mine.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)\n"
    "try:\n    mine.sendto(b'', b'\\0tir-nobody')\nexcept OSError:\n    pass\n"
    "mine.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 0)\n"
    "mine.getsockname()"
)
# What reached A's socket: the message and the contents of any descriptor that came with it.
RECEIVED = (
    "import array, os\n"
    "try:\n    data, ancillary, flags, sender = mine.recvmsg(4096, 4096, socket.MSG_DONTWAIT)\n"
    "except BlockingIOError:\n    print('nothing')\n"
    "else:\n"
    "    fds = array.array('i')\n"
    "    for level, kind, blob in ancillary:\n"
    "        if kind == socket.SCM_RIGHTS:\n"
    "            fds.frombytes(blob[: len(blob) - len(blob) % fds.itemsize])\n"
    "    seen = []\n"
    "    for fd in fds:\n"
    "        try:\n            seen.append(os.pread(fd, 100, 0))\n"
    "        except OSError:\n            seen.append('socket')\n"
    "    print('received', data, seen)"
)


def _send_from(address: bytes | None) -> str:
    """B's snippet: a secret file, its own protocol socket, and a message carrying both descriptors to
    `address`, or to every abstract name it finds in /proc/net/unix (None)."""
    targets = repr([address]) if address is not None else (
        "[b'\\0' + line.split()[-1][1:].encode() for line in open('/proc/net/unix').read().splitlines()[1:]"
        " if line.split()[-1].startswith('@')]"
    )
    return (
        "import array, gc, socket\n"
        "with open('/tmp/secret', 'w') as f:\n    f.write('secret of B')\n"
        "secret = open('/tmp/secret')\n"
        "proto = [o for o in gc.get_objects() if isinstance(o, socket.socket) and o.fileno() >= 0][0]\n"
        "out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
        "fds = array.array('i', [secret.fileno(), proto.fileno()])\n"
        f"targets = {targets}\n"
        "results = []\n"
        "for target in targets:\n"
        "    try:\n"
        "        out.sendmsg([b'from B'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)], 0, target)\n"
        "        results.append('sent')\n"
        "    except OSError as e:\n"
        "        results.append(type(e).__name__)\n"
        "print(len(targets), results)"
    )


def _autobound(session: Session) -> bytes:
    obs = run(session, AUTOBIND)
    assert obs.status == "ok", obs.text
    name = ast.literal_eval(obs.text)
    assert isinstance(name, bytes) and name.startswith(b"\0") and len(name) > 1  # the kernel gave it a name
    return name


def test_an_abstract_name_of_another_session_is_unreachable(ex: Executor) -> None:
    with ex.session() as a, ex.session() as b:
        name = _autobound(a)
        # B knows A's name (guessed, or told): the name does not exist where B lives.
        assert run(b, _send_from(name)).text == "1 ['ConnectionRefusedError']"
        assert run(a, RECEIVED).text == "nothing"


def test_autobound_sockets_of_another_session_are_not_listed(ex: Executor) -> None:
    with ex.session() as a, ex.session() as b:
        name = _autobound(a)
        listing = run(b, "print(open('/proc/net/unix').read())").text
        assert "@" + name[1:].decode() not in listing
        assert run(b, _send_from(None)).text == "0 []"  # no abstract name at all in B's world
        assert run(a, RECEIVED).text == "nothing"


def test_descriptors_cannot_pass_between_sessions(ex: Executor) -> None:
    # Over a shared name B would hand A its files and its protocol socket (A could then answer B's calls).
    with ex.session() as a, ex.session() as b:
        name = _autobound(a)
        run(b, _send_from(name))
        run(b, _send_from(None))
        received = run(a, RECEIVED).text
        assert received == "nothing"
        assert "secret of B" not in received and "socket" not in received


def test_files_of_a_closed_session_are_out_of_reach(ex: Executor) -> None:
    with ex.session() as a:
        name = _autobound(a)
        with ex.session() as b:
            run(b, _send_from(name))
            worker = b._worker
        assert worker is not None and worker.exited.wait(PATIENT)  # B is gone, its tmpfs with it
        assert run(a, RECEIVED).text == "nothing"
        assert "secret of B" not in run(a, "import os\nprint(os.listdir('/tmp'))").text


def test_netlink_does_not_reach_another_session(ex: Executor) -> None:
    # NETLINK_USERSOCK lets unprivileged processes of one network namespace send to each other's port ids,
    # listed in /proc/net/netlink.
    listen = (
        "import socket\n"
        "nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 2)\n"
        "try:\n    nl.sendto(b'x' * 16, (0, 0))\nexcept OSError:\n    pass\n"  # sending binds it to a port id
        "nl.getsockname()[0]"
    )
    send = (
        "import socket\n"
        "ports = [int(line.split()[2]) for line in open('/proc/net/netlink').read().splitlines()[1:]"
        " if line.split()[1] == '2' and int(line.split()[2]) > 0]\n"
        "out = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 2)\n"
        "sent = 0\n"
        "for port in ports:\n"
        "    try:\n        out.sendto(b'\\x14\\0\\0\\0' + b'\\0' * 12 + b'from', (port, 0))\n        sent += 1\n"
        "    except OSError:\n        pass\n"
        "print((ports, sent))"
    )
    received = "try:\n    print(nl.recv(100, socket.MSG_DONTWAIT))\nexcept BlockingIOError:\n    print('nothing')"
    with ex.session() as a, ex.session() as b:
        port = int(run(a, listen).text)
        assert port != 0
        ports, sent = ast.literal_eval(run(b, send).text)
        assert port not in ports
        assert run(a, received).text == "nothing"


def test_locks_and_watches_on_shared_files_say_nothing(ex: Executor) -> None:
    # The read-only view is the same files for every session: a lock one session holds on one of them, or a
    # watch on it, would be a signal another session can read.
    target = os.path.realpath(sys.executable)  # in every session's view
    hold = (
        "import fcntl, struct\n"
        f"shared = open({target!r}, 'rb')\n"
        "fcntl.lockf(shared, fcntl.LOCK_SH)\n"  # a read lock: the only kind a reader may place
        "try:\n    fcntl.flock(shared, fcntl.LOCK_EX)\n    print('flock held')\n"
        "except OSError as e:\n    print('flock', e.errno)"
    )
    probe = (
        "import ctypes, fcntl, struct\n"
        f"shared = open({target!r}, 'rb')\n"
        "try:\n    fcntl.flock(shared, fcntl.LOCK_EX | fcntl.LOCK_NB)\n    print('flock free')\n"
        "except OSError as e:\n    print('flock', e.errno)\n"
        "try:\n"
        "    lock = fcntl.fcntl(shared, fcntl.F_GETLK, struct.pack('hhqqi', fcntl.F_WRLCK, 0, 0, 0, 0))\n"
        "    print('getlk', struct.unpack('hhqqi', lock)[0] != fcntl.F_UNLCK)\n"
        "except OSError as e:\n    print('getlk', e.errno)\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print('inotify', libc.inotify_init1(0), ctypes.get_errno())"
    )
    with ex.session() as a, ex.session() as b:
        assert run(a, hold).text == "flock 1"  # EPERM
        assert run(b, probe).text == "flock 1\ngetlk 1\ninotify -1 1"


# ------------------------------------------------------------------------------------------ idle memory


def _children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def test_idle_childrens_memory_counts_against_the_budget() -> None:
    # A child forked by a call allocates only once the call is over (when the test signals it): its memory
    # must still be measured, and the session evicted, while the session is idle.
    hold = (
        "import mmap, os, signal\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})\n"
        "if os.fork() == 0:\n"
        "    signal.sigwait({signal.SIGUSR1})\n"
        "    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE\n"
        "    held = mmap.mmap(-1, 300 * 2**20, flags=flags)\n"  # allocated in one system call
        "    signal.sigwait({signal.SIGUSR1})\n"
        "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})\n"
        "kept = 'state'"
    )
    with Executor(timeout=PATIENT, memory_budget_mb=64, warm_workers=0) as ex, ex.session() as s:
        assert run(s, hold).status == "ok"
        worker = s._worker
        assert worker is not None
        (child,) = _children_of(worker.pid2)
        assert not worker.exited.is_set()  # within budget after the call
        os.kill(child, signal.SIGUSR1)
        assert worker.exited.wait(PATIENT), "the idle session over the memory budget was not evicted"
        after = run(s, "kept")
        assert after.state_lost and "NameError" in after.text
        assert after.text.startswith("[The Python session was restarted")


# ------------------------------------------------------------------------------------------ close


def test_close_while_run_waits_for_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    requested, delivered = threading.Event(), threading.Event()
    request, on_spawned = Executor._request, Executor._on_spawned

    def spy_request(self: Executor, *args: object) -> None:
        request(self, *args)  # type: ignore[arg-type]
        if args[0] is not None:  # a session's request, not the pool's
            requested.set()

    def held(self: Executor, request_id: int, msg: dict) -> None:
        delivered.wait(PATIENT)  # the worker is spawned, but run() hears of it only when the test says so
        on_spawned(self, request_id, msg)

    monkeypatch.setattr(Executor, "_request", spy_request)
    monkeypatch.setattr(Executor, "_on_spawned", held)  # before the zygote client binds it
    with Executor(timeout=30.0, warm_workers=0) as ex:
        s = ex.session()
        observations: list[Observation] = []
        thread = threading.Thread(target=lambda: observations.append(s.run("while True:\n    pass")))
        thread.start()
        assert requested.wait(PATIENT)
        s.close()
        thread.join(HANG)
        returned = not thread.is_alive()
        delivered.set()
        thread.join(HANG)
        assert returned, "run() kept waiting for its worker after close()"
        assert [o.status for o in observations] == ["killed"]
        assert "the session was closed" in observations[0].text


def test_close_ends_a_running_call_of_that_session(monkeypatch: pytest.MonkeyPatch) -> None:
    in_flight = threading.Event()
    exchange = Session._exchange

    def spy(self: Session, worker: object, code: str, n: int) -> object:
        in_flight.set()
        return exchange(self, worker, code, n)  # type: ignore[arg-type]

    monkeypatch.setattr(Session, "_exchange", spy)
    with Executor(timeout=PATIENT, warm_workers=1) as ex:
        s = ex.session()
        observations: list[Observation] = []
        thread = threading.Thread(target=lambda: observations.append(s.run("while True:\n    pass")))
        thread.start()
        assert in_flight.wait(PATIENT)
        s.close()
        thread.join(HANG)
        assert not thread.is_alive()
        assert [o.status for o in observations] == ["killed"]  # not a timeout: it ended at close()
        assert "the session was closed" in observations[0].text


# ------------------------------------------------------------------------------------------ what is reported


@pytest.mark.parametrize(
    ("code", "style"),
    [
        ("print('\\ud800' * 1990)", "full"),
        ("import sys\nsys.stderr.write('\\udfff' * 50_000)", "full"),
        ("raise ValueError('\\ud800' * 1990)", "full"),
        ("print('a' * 1000 + '\\ud800' * 990 + 'b')", "full"),
        ("print('\\ud800' * 1990)", "reference"),
        ("raise ValueError('\\ud800' * 1990)", "reference"),
    ],
)
def test_surrogates_are_escaped_inside_the_cap(code: str, style: str) -> None:
    with Executor(timeout=PATIENT, max_output_chars=2000, observation_style=style, warm_workers=1) as ex:
        with ex.session() as s:
            obs = run(s, code)
    assert "\\ud" in obs.text or "\\udfff" in obs.text  # escaped, as sanitize() does
    obs.text.encode("utf-8")
    assert len(obs.text) <= 2000 + 50  # the cap and its cut marker


@pytest.mark.parametrize(
    ("code", "status", "says"),
    [
        ("import os\nos._exit(152)", "killed", "exited (code 152)"),
        ("import os\nos._exit(139)", "killed", "exited (code 139)"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", "killed", "died (SIGSEGV)"),
        (  # RLIMIT_CPU, the backstop of the CPU watchdog, kills with SIGXCPU
            "import resource\nresource.setrlimit(resource.RLIMIT_CPU, (1, resource.getrlimit(resource.RLIMIT_CPU)[1]))"
            "\nwhile True:\n    pass",
            "timeout",
            "CPU time",
        ),
    ],
)
def test_exit_codes_and_signals_are_told_apart(ex: Executor, code: str, status: str, says: str) -> None:
    with ex.session() as s:
        obs = run(s, code)
    assert obs.status == status, obs.text
    assert says in obs.text


def test_a_half_closed_protocol_socket_is_a_protocol_failure(ex: Executor) -> None:
    code = (
        "import gc, socket, time\n"
        "sock = [o for o in gc.get_objects() if isinstance(o, socket.socket) and o.fileno() >= 0][0]\n"
        "sock.shutdown(socket.SHUT_WR)\ntime.sleep(1000)"
    )
    with ex.session() as s:
        obs = run(s, code)
        # Not an exit to wait for: the worker, alive, hung up; it is stopped at once and said so.
        assert obs.status == "killed" and "closed its connection" in obs.text, obs.text
        assert run(s, "1 + 1").text == "2"


def test_proc_does_not_show_the_harness(ex: Executor) -> None:
    code = (
        "import os\n"
        "for path in ('/proc/self/cmdline', '/proc/1/cmdline', '/proc/self/cgroup', '/proc/1/cgroup'):\n"
        "    print(open(path).read().replace('\\0', ' ')[:400].strip())"
    )
    with ex.session() as s:
        obs = run(s, code)
    assert obs.status == "ok", obs.text
    text = obs.text
    for secret in (REPO, os.path.dirname(WORKER_SCRIPT), ex._base_dir, "tir-harness", os.path.dirname(sys.executable)):
        assert secret not in text
    assert str(os.getpid()) not in re.findall(r"\d+", text)
    cgroups = [line for line in text.splitlines() if re.match(r"\d+:[^:]*:", line)]
    assert cgroups and all(line.endswith(":/") for line in cgroups)  # the session's own cgroup namespace
    command_lines = [line for line in text.splitlines() if line and line not in cgroups]
    assert command_lines and not any("/" in line.replace("/proc/self/fd/", "") for line in command_lines)
