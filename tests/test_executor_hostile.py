"""Hostile snippets (issue 4): each must end with the expected status within the limit + 1 s, leave the
harness intact, and a fresh session must work right after.

These expectations hold where the executor finds PID and network namespaces and runs snippets under an
unprivileged uid (Linux as root, as on this project's machines and CI); `test_executor.py` checks that
`Executor.isolation` reports what is in force.
"""

from __future__ import annotations

import os
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from tir_harness.sandbox.executor import Executor, Observation

TIMEOUT = 2.0
SLOW_TIMEOUT = 6.0  # for snippets that must first fill 1 GB, slow on a machine short of free memory
SLACK = 1.0


@pytest.fixture(scope="module")
def ex() -> Iterator[Executor]:
    with Executor(timeout=TIMEOUT, max_processes=32, file_size_mb=16, max_output_chars=2000) as executor:
        yield executor


@pytest.fixture(scope="module")
def slow_ex() -> Iterator[Executor]:
    with Executor(timeout=SLOW_TIMEOUT, max_output_chars=2000, warm_workers=1) as executor:
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
    slow: bool = False  # run under SLOW_TIMEOUT
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
    Case("print_1e9", "print('x' * 10**9)", "output_limit", "OutputLimitError", slow=True),
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
    Case("write_outside_workdir", "open('{public}/new.txt', 'w').write('x')", "error", "PermissionError"),
    Case("delete_files", "import os\nos.remove('{public}/keep.txt')", "error", "PermissionError"),
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
        "PermissionError",
        _not_in_text(SECRET),
    ),
    Case(
        "socket_to_localhost",
        "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)",
        "error",
        "Network is unreachable",
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
    slow_ex: Executor,
    public_dir: str,
    listener: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIR_TEST_SECRET", SECRET)
    code = case.code.replace("{public}", public_dir).replace("{port}", str(listener.getsockname()[1]))
    ex = slow_ex if case.slow else ex
    limit = ex.config.timeout
    with ex.session() as s:
        start = time.monotonic()
        obs = s.run(code)
        wall = time.monotonic() - start
    assert obs.status == case.status, obs.text[-500:]
    assert case.says in obs.text
    assert obs.elapsed <= limit + SLACK
    assert wall <= limit + SLACK
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
