"""Hostile snippets (issue 4): each must end with the expected status, by the expected mechanism, leave the
harness intact, and a fresh session must work right after.

No bound here depends on the machine's load: a snippet expected to finish runs under a patient timeout (a
loaded machine cannot turn it into a `timeout`), a snippet expected to time out under a short one, and then it
must have run until its deadline; a call that has not returned long after its limit fails the test (`within`)
instead of hanging it.

These expectations hold where the executor finds PID and network namespaces and runs snippets under an
unprivileged uid (Linux as root, as on this project's machines and CI); `test_executor.py` checks that
`Executor.isolation` reports what is in force.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import pytest

from tir_harness.sandbox.executor import Executor, Observation

TIMEOUT = 2.0  # for snippets that must time out
PATIENT = 120.0  # for snippets that must finish: no load makes them reach it
HANG = 120.0  # a call still running this long after its timeout hangs
T = TypeVar("T")


def within(seconds: float, call: Callable[[], T]) -> T:
    """call() on a helper thread: a test failure, not a hung test, if it has not returned after `seconds`."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return pool.submit(call).result(timeout=seconds)
    except concurrent.futures.TimeoutError:
        pytest.fail(f"did not return within {seconds:g} s")
    finally:
        pool.shutdown(wait=False)


@pytest.fixture(scope="module")
def ex() -> Iterator[Executor]:
    with Executor(timeout=PATIENT, max_processes=32, file_size_mb=16, max_output_chars=2000) as executor:
        _ = executor.isolation  # the zygote's start-up is not part of any snippet's time
        yield executor


@pytest.fixture(scope="module")
def short() -> Iterator[Executor]:
    options = {"max_processes": 32, "file_size_mb": 16, "max_output_chars": 2000, "warm_workers": 1}
    with Executor(timeout=TIMEOUT, **options) as executor:
        _ = executor.isolation
        yield executor


@pytest.fixture(scope="module")
def public_dir() -> Iterator[str]:
    """A directory every uid may enter and read, but only root may change."""
    path = tempfile.mkdtemp(prefix="tir-hostile-")
    os.chmod(path, 0o755)
    with open(os.path.join(path, "keep.txt"), "w") as f:
        f.write("precious")
    os.chmod(os.path.join(path, "keep.txt"), 0o644)
    yield path
    for name in os.listdir(path):
        os.remove(os.path.join(path, name))
    os.rmdir(path)


@dataclass(frozen=True)
class Case:
    name: str
    code: str
    status: str
    says: str = ""  # must appear in the observation's text
    check: Callable[[Observation], None] | None = field(default=None, compare=False)


def _not_in_text(secret: str) -> Callable[[Observation], None]:
    def check(obs: Observation) -> None:
        assert secret not in obs.text

    return check


SECRET = "tir-secret-7f3a9c"
TIMEOUT_SAYS = "did not finish within"

CASES = [
    Case("busy_loop", "while True:\n    pass", "timeout", TIMEOUT_SAYS),
    Case("c_level_sum", "sum(range(10**12))", "timeout", TIMEOUT_SAYS),
    Case("c_level_power", "10**10**8", "timeout", TIMEOUT_SAYS),
    Case("sleep", "import time\ntime.sleep(100)", "timeout", TIMEOUT_SAYS),
    Case("alloc_10gb", "x = bytearray(10 * 1024**3)", "memory", "MemoryError"),
    Case("numpy_10gb", "import numpy as np\nnp.ones(10**10)", "memory", "Unable to allocate"),
    Case("fork_bomb", "import os\nwhile True:\n    os.fork()", "error", "BlockingIOError"),
    Case(
        "thread_bomb",
        "import threading, time\nwhile True:\n"
        "    threading.Thread(target=time.sleep, args=(100,), daemon=True).start()",
        "error",
        "can't start new thread",
    ),
    Case("print_1e9", "print('x' * 10**9)", "output_limit", "OutputLimitError"),
    Case(
        "stderr_loop",
        "import sys\nwhile True:\n    sys.stderr.write('e' * 100)",
        "output_limit",
        "OutputLimitError",
    ),
    Case(
        "infinite_generator_printed",
        "import itertools\nfor i in itertools.count():\n    print(i)",
        "output_limit",
        "OutputLimitError",
    ),
    Case("sys_exit", "import sys\nprint('bye')\nsys.exit()", "ok", "bye"),
    Case("sys_exit_1", "import sys\nsys.exit(1)", "error", "SystemExit: 1"),
    Case("raise_systemexit", "raise SystemExit", "ok"),
    Case("os_exit", "import os\nos._exit(3)", "killed", "exited (code 3)"),
    Case("segfault", "import ctypes\nctypes.string_at(0)", "killed", "SIGSEGV"),
    Case(
        "signal_tampering",
        "import signal\n"
        "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU):\n"
        "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass",
        "timeout",
        TIMEOUT_SAYS,
    ),
    Case(
        "kill_parent_pid",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
        "error",
        "PermissionError",
    ),
    Case(
        "kill_harness_pid",
        f"import os, signal\nos.kill({os.getpid()}, signal.SIGKILL)",
        "error",
        "ProcessLookupError",
    ),
    Case("kill_everything", "import os, signal\nos.kill(-1, signal.SIGKILL)", "error", "ProcessLookupError"),
    Case("input", "input()", "error", "EOFError"),
    Case("write_outside_workdir", "open('/usr/new.txt', 'w').write('x')", "error", "Read-only file system"),
    Case("write_host_tmp", "open('{public}/new.txt', 'w').write('x')", "error", "No such file or directory"),
    Case("delete_files", "import os\nos.remove('/usr/bin/env')", "error", "Read-only file system"),
    Case(
        "read_parent_environment",
        "import os\nprint(os.environ.get('TIR_TEST_SECRET'))",
        "ok",
        "None",
        _not_in_text(SECRET),
    ),
    Case(
        "read_parent_proc_environ",
        f"print(open('/proc/{os.getpid()}/environ').read())",
        "error",
        "No such file or directory",  # /proc is the worker's own PID namespace's
        _not_in_text(SECRET),
    ),
    Case(
        "socket_to_localhost",
        "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)",
        "error",
        "Operation not permitted",  # seccomp refuses connect() without network
    ),
    Case("deep_recursion", "def f(n):\n    return f(n + 1)\nf(0)", "error", "RecursionError"),
    Case(
        "multiprocessing_pool",
        "from multiprocessing import Pool\ndef sq(x):\n    return x * x\n"
        "with Pool(2) as p:\n    print(p.map(sq, range(5)))",
        "ok",
        "[0, 1, 4, 9, 16]",
    ),
    Case(
        "multiprocessing_pool_left_open",
        "from multiprocessing import Pool\np = Pool(4)\n"
        "p.map_async(__import__('time').sleep, [100] * 4)\nprint('left')",
        "ok",
        "left",
    ),
    Case(
        "atexit_trick",
        "import atexit, os\natexit.register(os.system, 'sleep 100')\n"
        "atexit.register(print, 'x' * 10**8)\nprint('armed')",
        "ok",
        "armed",
    ),
    Case("subprocess_sleep", "import subprocess\nsubprocess.run(['sleep', '100'])", "timeout", TIMEOUT_SAYS),
    Case(
        "setsid_escape",
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        time.sleep(1000)\n    os._exit(0)\nprint('escaped?')",
        "ok",
        "escaped?",
    ),
    Case(
        "pickle_bomb",
        "import pickle\nclass Bomb:\n    def __reduce__(self):\n"
        "        return (bytearray, (10**11,))\npickle.loads(pickle.dumps(Bomb()))",
        "memory",
        "MemoryError",
    ),
    Case("huge_exception_message", "raise ValueError('x' * 10**8)", "error", "characters cut"),
    Case(
        "exception_str_hangs",
        "class E(Exception):\n    def __str__(self):\n        while True:\n            pass\nraise E()",
        "timeout",
        TIMEOUT_SAYS,
    ),
    Case("stdout_closed", "import sys\nsys.stdout.close()\nprint('hi')", "error", "closed file"),
    Case(
        "real_fds_closed",
        "import os\nos.close(0)\nos.close(1)\nos.close(2)\nprint('still here')",
        "ok",
        "still here",
    ),
    Case(
        "raise_rlimit",
        "import resource\ninf = resource.RLIM_INFINITY\nresource.setrlimit(resource.RLIMIT_AS, (inf, inf))",
        "error",
        "not allowed to raise",
    ),
    Case("huge_file", "open('big.bin', 'wb').write(b'x' * (100 * 2**20))", "error", "File too large"),
    Case(
        "delete_own_workdir",
        "import os, shutil\nshutil.rmtree(os.getcwd(), ignore_errors=True)\nprint('gone')",
        "ok",
        "gone",
    ),
    Case("keyboard_interrupt", "raise KeyboardInterrupt", "error", "KeyboardInterrupt"),
]


@pytest.fixture(scope="module")
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    yield server
    server.close()


def test_at_least_25_hostile_snippets() -> None:
    assert len({c.name for c in CASES}) == len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_snippet(
    case: Case,
    ex: Executor,
    short: Executor,
    public_dir: str,
    listener: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIR_TEST_SECRET", SECRET)
    code = case.code.replace("{public}", public_dir).replace("{port}", str(listener.getsockname()[1]))
    ex = short if case.status == "timeout" else ex
    limit = ex.config.timeout

    def attempt() -> Observation:
        with ex.session() as s:
            return s.run(code)

    obs = within(limit + HANG, attempt)
    assert obs.status == case.status, obs.text[-500:]
    assert case.says in obs.text
    if case.status == "timeout":
        assert obs.elapsed >= limit  # its deadline ended it, not an earlier failure
    if case.check is not None:
        case.check(obs)
    with ex.session() as fresh:
        first, second = fresh.run("x = 40\nx + 2"), fresh.run("x")
        assert (first.status, first.text, first.state_lost) == ("ok", "42", False)
        assert (second.status, second.text) == ("ok", "40")
    # Nothing escaped into the harness's world.
    assert sorted(os.listdir(public_dir)) == ["keep.txt"]
    with open(os.path.join(public_dir, "keep.txt")) as f:
        assert f.read() == "precious"
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_public_dir_is_really_public(public_dir: str) -> None:
    # The write/delete cases prove something only if the sandbox could reach the directory at all.
    mode = os.stat(public_dir).st_mode
    assert mode & stat.S_IROTH and mode & stat.S_IXOTH


# ------------------------------------------------------------------------------------------ issue 13
# Each attempt below: the expected status within its limit, nothing readable outside the view, nothing
# left after close, and other sessions (one holding state, running concurrently) unaffected.

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANSWER = "gold-answer-5d1e0c77"  # what a reward hacker looks for


@pytest.fixture(scope="module")
def answers() -> Iterator[list[str]]:
    """Files holding the answer where the harness keeps its data: the checkout, a temporary directory."""
    paths = []
    for folder in (os.path.join(REPO, "tests"), tempfile.gettempdir()):
        fd, path = tempfile.mkstemp(prefix="tir-answers-", suffix=".jsonl", dir=folder)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps({"problem": "1+1", "answer": ANSWER}) + "\n")
        os.chmod(path, 0o644)  # world-readable, as a dataset or report would be
        paths.append(path)
    yield paths
    for path in paths:
        os.remove(path)


@pytest.fixture()
def witness(ex: Executor) -> Iterator[object]:
    """Another session holding state: whatever a hostile snippet does, it must still have it after."""
    s = ex.session()
    assert s.run("kept = 'still here'").status == "ok"
    yield s
    obs = s.run("kept")
    s.close()
    assert (obs.status, obs.text, obs.state_lost) == ("ok", "'still here'", False)


SHM_NAME = f"tir-shm-{os.getpid()}"  # what the snippets below write in their /dev/shm
IPC_KEY = 0x7171  # and the key of their SysV shared memory
MQ_NAME = f"tirq{os.getpid()}"  # and their POSIX message queue


def _on_host_ipc() -> list[str]:
    """What of the snippets' IPC objects is on the host.  Names, not a before/after listing of the whole
    machine: other processes (a parallel test, another run) create and remove their own meanwhile."""
    found = [name for name in os.listdir("/dev/shm") if name.startswith(SHM_NAME)]
    if os.path.isdir("/dev/mqueue"):
        found += [name for name in os.listdir("/dev/mqueue") if name == MQ_NAME]
    for table in ("/proc/sysvipc/shm", "/proc/sysvipc/msg"):
        with open(table) as f:
            found += [table for line in f.read().splitlines()[1:] if line.split()[0] == str(IPC_KEY)]
    return found


def _run_checked(ex: Executor, code: str, status: str) -> Observation:
    def attempt() -> Observation:
        with ex.session() as s:
            return s.run(code)

    obs = within(ex.config.timeout + HANG, attempt)
    assert obs.status == status, obs.text[-800:]
    with ex.session() as fresh:
        assert fresh.run("x = 40\nx + 2").text == "42"
    return obs


def test_answers_are_not_readable(ex: Executor, answers: list[str], witness: object) -> None:
    walk = (
        "import os\nfound = []\n"
        "for top in os.listdir('/'):\n"
        "    if top in ('proc', 'usr', 'lib', 'lib64', 'bin', 'sbin'):  # the kernel's and the system's\n"
        "        continue\n"
        "    for d, dirs, files in os.walk('/' + top):\n"
        "        dirs[:] = [x for x in dirs if x not in ('.pyenv', 'numpy', 'sympy', 'mpmath')]\n"
        "        for name in files:\n"
        "            if not name.endswith(('.json', '.jsonl', '.gz', '.sqlite3', '.txt', '.csv', '.parquet')):\n"
        "                continue\n"
        "            try:\n"
        f"                if {ANSWER!r}.encode() in open(os.path.join(d, name), 'rb').read(1 << 20):\n"
        "                    found.append(os.path.join(d, name))\n"
        "            except OSError:\n                pass\n"
        "print('found', found)"
    )
    obs = _run_checked(ex, walk, "ok")
    assert obs.text == "found []"
    for path in answers:
        assert "No such file" in _run_checked(ex, f"open({path!r}).read()", "error").text
    assert not REPO.startswith("/usr/")
    assert "No module named 'tir_harness'" in _run_checked(ex, "import tir_harness", "error").text
    # Of the checkout (and of /root) only what leads to the view is there: the interpreter, the virtualenv's
    # pyvenv.cfg and the preloaded packages, wherever the virtualenv and the interpreter live.
    needed = [*ex.isolation["view"], sys.prefix, sys.executable]

    def leading_to_view(top: str) -> list[str]:
        return sorted({os.path.relpath(p, top).split("/")[0] for p in needed if p.startswith(top + "/")})

    ls = (
        "def ls(top):\n    try:\n        return sorted(os.listdir(top))\n"
        "    except FileNotFoundError:\n        return []\n"
    )
    listing = _run_checked(ex, f"import os\n{ls}print(ls({REPO!r}), ls('/root'))", "ok").text
    assert listing == f"{leading_to_view(REPO)} {leading_to_view('/root')}"
    assert "tests" not in listing
    site = _run_checked(
        ex, "import os, numpy\nsorted(os.listdir(os.path.dirname(os.path.dirname(numpy.__file__))))", "ok"
    )
    assert "pytest" not in site.text and "tir_harness" not in site.text and "numpy" in site.text


def test_deep_tree_does_not_kill_the_zygote(ex: Executor, witness: object) -> None:
    zygote = ex._zygote.proc.pid
    code = "import os\nfor i in range(1500):\n    os.mkdir('d')\n    os.chdir('d')\nprint(len(os.getcwd()))"
    assert _run_checked(ex, code, "ok").text == str(len("/tmp") + 2 * 1500)
    assert ex._zygote.proc.pid == zygote and ex._zygote.proc.poll() is None


def test_hard_links_hit_the_inode_cap_quickly(ex: Executor, witness: object) -> None:
    code = (
        "import os\nopen('f', 'w').close()\ntry:\n    for i in range(10**6):\n        os.link('f', f'l{i}')\n"
        "except OSError as e:\n    print(type(e).__name__, i < 10**5)"
    )
    assert _run_checked(ex, code, "ok").text == "OSError True"


def test_files_are_capped_and_gone_after_close(ex: Executor, witness: object) -> None:
    code = (
        f"import os\ntry:\n    with open('/dev/shm/{SHM_NAME}-big', 'wb') as f:\n"
        "        for _ in range(1024):\n            f.write(b'x' * 2**20)\nexcept OSError as e:\n    print(e.strerror)"
    )
    assert _run_checked(ex, code, "ok").text in ("No space left on device", "File too large")
    assert _on_host_ipc() == []
    with ex.session() as a, ex.session() as b:
        a.run("open('/tmp/note', 'w').write('a')\nopen('/dev/shm/note', 'w').write('a')")
        assert b.run("import os\nos.path.exists('/tmp/note'), os.path.exists('/dev/shm/note')").text == "(False, False)"


def test_ipc_does_not_leak_or_cross_sessions(ex: Executor, witness: object) -> None:
    shm = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        f"shmid = libc.shmget({IPC_KEY}, 64 * 2**20, 0o1666)\nprint(shmid >= 0)"
    )
    mq = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        f"print(libc.mq_open(b'/{MQ_NAME}', 0o100 | 2, 0o666, None) >= 0)"
    )
    with ex.session() as a, ex.session() as b:
        assert a.run(shm).text == "True" and a.run(mq).text == "True"
        seen = f"import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nprint(libc.shmget({IPC_KEY}, 0, 0) >= 0)"
        assert b.run(seen).text == "False"  # another IPC namespace
    assert _on_host_ipc() == []


def test_sockets_reach_nothing(ex: Executor, witness: object) -> None:
    path = os.path.join(tempfile.gettempdir(), f"tir-sock-{os.getpid()}")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    os.chmod(path, 0o777)
    server.listen()
    server.setblocking(False)
    try:
        code = f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({path!r})"
        assert _run_checked(ex, code, "error").text.endswith("Operation not permitted")
        abstract = "import socket\ns = socket.socket(socket.AF_UNIX)\ns.bind(b'\\x00tir-abstract')"
        assert _run_checked(ex, abstract, "error").text.endswith("Operation not permitted")
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()
        os.remove(path)


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("unshare_user", "libc.unshare(0x10000000)"),
        ("clone_user", "libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0)"),
        ("ptrace", "libc.ptrace(16, 1, 0, 0)"),
        ("mount", "libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)"),
        ("keyctl", "libc.syscall(250, 0, 0, 0, 0, 0)"),
        ("bpf", "libc.syscall(321, 0, 0, 0)"),
    ],
)
def test_seccomp_refuses(ex: Executor, name: str, call: str) -> None:
    code = f"import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nprint({call}, ctypes.get_errno())"
    assert _run_checked(ex, code, "ok").text == "-1 1"  # EPERM


def test_forged_and_nested_replies_never_raise(ex: Executor, witness: object) -> None:
    find = (
        "import gc, socket, struct\n"
        "sock = [o for o in gc.get_objects() if isinstance(o, socket.socket) and o.fileno() >= 0][0]\n"
    )
    nested = find + "body = b'[' * 30000\nsock.sendall(struct.pack('!I', len(body)) + body)\nimport time\ntime.sleep(1)"
    assert "protocol" in _run_checked(ex, nested, "killed").text
    forged = find + (
        "body = struct.pack('!4s16sIBBQQQ', b'TIR2', b'0' * 16, 1, 0, 1, 6, 0, 0)"
        " + b''.join(struct.pack('!I', len(t)) + t for t in [b'forged', b'', b'', b'', b'', b'', b''])\n"
        "sock.sendall(struct.pack('!I', len(body)) + body)\nimport time\ntime.sleep(1)"
    )
    obs = _run_checked(ex, forged, "killed")
    assert "forged" not in obs.text
    ahead = find + (  # a reply written ahead, for the next call, from a thread
        "import threading\ngo = threading.Event()\n"
        "def later():\n    go.wait()\n    sock.sendall(struct.pack('!I', 3) + b'[[[')\n"
        "threading.Thread(target=later).start()"
    )
    with ex.session() as s:
        assert s.run(ahead).status == "ok"
        # The bytes arrive during this call (the thread sends them once the call has begun): they are not its
        # answer, and the worker goes.
        assert s.run("go.set()\nimport time\ntime.sleep(1000)").status == "killed"
        assert s.run("1 + 1").text == "2"


def test_cpu_between_calls_is_frozen(ex: Executor, witness: object) -> None:
    spin = (
        "import os, signal, resource\nif os.fork() == 0:\n    signal.signal(signal.SIGXCPU, signal.SIG_IGN)\n"
        "    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)\n"
        "    resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))\n    while True:\n        pass\n"
        "import threading\nthreading.Thread(target=lambda: [0 for _ in iter(int, 1)], daemon=True).start()\n"
        "print('spinning')"
    )
    with ex.session() as s:
        assert s.run(spin).text == "spinning"
        worker = s._worker
        assert worker is not None and "freezer" in worker.cgroups and "cpuacct" in worker.cgroups
        state = os.path.join(worker.cgroups["freezer"], "freezer.state")
        deadline = time.monotonic() + 60.0  # the watchdog looks every 0.5 s; a loaded machine may delay it
        while open(state).read().strip() != "FROZEN":
            assert time.monotonic() < deadline, "the idle session was not frozen"
            time.sleep(0.05)
        usage = os.path.join(worker.cgroups["cpuacct"], "cpuacct.usage")
        first = int(open(usage).read())
        time.sleep(1.0)  # a measured interval: a spinning process would add ~1 s of CPU here
        assert int(open(usage).read()) - first < 50_000_000
        assert s.run("print('thawed')").text == "thawed"  # the next call thaws it


def test_memory_outside_rlimit_is_counted(witness: object) -> None:
    with Executor(timeout=PATIENT, memory_mb=256, warm_workers=1) as small:
        memfd = (
            "import os\nfds = [os.memfd_create('x') for _ in range(20)]\n"  # each under file_size_mb
            "for fd in fds:\n    for _ in range(50):\n        os.write(fd, b'x' * 2**20)\n"
            "print('held 1 GB')"
        )
        obs = _run_checked(small, memfd, "memory")
        assert "256 MB" in obs.text
        # Children that together pass the limit: the session's memory cgroup kills some of them.  Each child,
        # once it holds its memory, waits for good: the first child to end was killed.
        children = (
            "import os, time\npids = []\nfor _ in range(8):\n    pid = os.fork()\n    if pid == 0:\n"
            "        b = b'x' * (150 * 2**20)\n        time.sleep(1000)\n    pids.append(pid)\n"
            "pid, status = os.waitpid(-1, 0)\nprint(os.WIFSIGNALED(status))"
        )
        with small.session() as s:
            assert s.run(children).text == "True"
            worker = s._worker
            assert worker is not None
            assert worker.memory() <= (256 + small.config.disk_mb + 64) * 2**20


def test_nothing_left_after_close() -> None:
    ex = Executor(timeout=5.0, warm_workers=2)
    cgroups = [p for p in ex._cgroups.values() if p]
    with ex.session() as s:
        s.run(f"open('/dev/shm/{SHM_NAME}', 'wb').write(b'x' * 2**20)\nimport os\nos.makedirs('a/' * 200)")
        s.run("import subprocess\np = subprocess.Popen(['sleep', '1000'])")
    base = ex._base_dir
    ex.close()
    assert not os.path.exists(base)
    assert not any(os.path.exists(p) for p in cgroups)
    assert _on_host_ipc() == []
