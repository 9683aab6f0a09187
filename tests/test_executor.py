"""The executor's normal behaviour: live state, display, formatting, sessions, threads, and cleanup."""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Iterator

import pytest

from tir_harness.sandbox.executor import (
    STATUSES,
    Executor,
    ExecutorClosed,
    ExecutorConfig,
    Observation,
    Session,
    session_limit,
)
from tir_harness.sandbox.observations import NOTE_LOST
from tir_harness.sandbox.observations import compose as _compose
from tir_harness.sandbox.observations import render as _render

PATIENT = 120.0  # the timeout of executors whose snippets must finish: no load makes them reach it


@pytest.fixture(scope="module")
def ex() -> Iterator[Executor]:
    with Executor(timeout=PATIENT, max_output_chars=300) as executor:
        yield executor


def run1(ex: Executor, code: str) -> Observation:
    with ex.session() as s:
        return s.run(code)


# -------------------------------------------------------------------------------------------- config


def test_config_is_frozen_plain_builtins() -> None:
    cfg = ExecutorConfig(timeout=3.0, network=True)
    data = dataclasses.asdict(cfg)
    assert json.loads(json.dumps(data)) == {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.timeout = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("timeout", 0),
        ("memory_mb", 1),
        ("observation_style", "fancy"),
        ("max_workers", 0),
        ("isolation", "x"),
    ],
)
def test_bad_config_names_the_option(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"ExecutorConfig\.{option} must be"):
        ExecutorConfig(**{option: value})


def test_unknown_option_is_named() -> None:
    with pytest.raises(TypeError, match="timout"):
        Executor(timout=3.0)


def test_options_override_config(ex: Executor) -> None:
    assert ex.config.timeout == PATIENT and ex.config.max_output_chars == 300
    assert ex.config.memory_mb == ExecutorConfig().memory_mb


# -------------------------------------------------------------------------------------------- cells


def test_state_lives_across_calls_without_replay(ex: Executor) -> None:
    with ex.session() as s:
        first = s.run("x = 2\nprint('side effect')\nx + 1")
        second = s.run("print(x * 10)")
    assert (first.status, first.text, first.state_lost) == ("ok", "side effect\n3", False)
    # The print of the first cell is not repeated: nothing was re-run.
    assert (second.status, second.text) == ("ok", "20")


def test_sessions_do_not_share_state(ex: Executor) -> None:
    with ex.session() as a, ex.session() as b:
        a.run("secret = 1")
        assert "NameError" in b.run("secret").text


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("x = 1", ""),
        ("1 + 1", "2"),
        ("None", ""),
        ("print('a')\n'b'", "a\n'b'"),
        ("if True:\n    3", ""),  # the last statement is not an expression
        ("[i * i for i in range(4)]", "[0, 1, 4, 9]"),
        ("import math\nmath.pi", repr(__import__("math").pi)),
        ("print('no newline', end='')\n5", "no newline\n5"),
    ],
)
def test_last_expression_is_displayed_like_ipython(ex: Executor, code: str, text: str) -> None:
    obs = run1(ex, code)
    assert (obs.status, obs.text) == ("ok", text)


def test_underscore_holds_the_last_displayed_value(ex: Executor) -> None:
    with ex.session() as s:
        s.run("6 * 7")
        assert s.run("_ + 1").text == "43"


def test_sympy_results(ex: Executor) -> None:
    with ex.session() as s:
        assert s.run("import sympy as sp\nx = sp.Symbol('x')\nsp.factor(x**2 - 1)").text == "(x - 1)*(x + 1)"
        assert s.run("sp.solve(x**2 - 4, x)").text == "[-2, 2]"
        assert s.run("print(sp.Rational(1, 3) + sp.Rational(1, 6))").text == "1/2"


def test_numpy_is_preloaded_and_usable(ex: Executor) -> None:
    assert run1(ex, "import numpy as np\nint(np.arange(5).sum())").text == "10"


def test_error_shows_the_snippets_traceback_only(ex: Executor) -> None:
    obs = run1(ex, "def f():\n    return 1 / 0\nf()")
    assert obs.status == "error"
    assert obs.text.startswith("Traceback (most recent call last):")
    assert 'File "<cell-1>", line 3, in <module>' in obs.text
    assert obs.text.endswith("ZeroDivisionError: division by zero")
    assert "_sandbox_worker" not in obs.text and "tir_harness" not in obs.text


def test_output_before_an_error_is_kept(ex: Executor) -> None:
    obs = run1(ex, "print('partial')\nraise KeyError('k')")
    assert obs.status == "error"
    assert obs.text.startswith("partial\nTraceback") and obs.text.endswith("KeyError: 'k'")


def test_syntax_error(ex: Executor) -> None:
    obs = run1(ex, "x = (1,")
    assert obs.status == "error"
    assert "SyntaxError" in obs.text.splitlines()[-1] and "Traceback" not in obs.text


def test_traceback_is_cut_to_its_tail(ex: Executor) -> None:
    code = "import sys\nsys.setrecursionlimit(200)\ndef f(n):\n    return g(n)\ndef g(n):\n    return f(n)\nf(0)"
    obs = run1(ex, code)
    assert obs.status == "error"
    assert obs.text.startswith("[... ") and "characters cut ...]" in obs.text
    assert obs.text.endswith("RecursionError: maximum recursion depth exceeded")
    assert len(obs.text) <= ex.config.max_output_chars + 50


def test_long_output_keeps_head_and_tail(ex: Executor) -> None:
    obs = run1(ex, "for i in range(10000):\n    print(f'line {i}')")
    assert obs.status == "output_limit"
    assert obs.text.startswith("line 0\nline 1\n") and obs.text.endswith("line 9999")
    assert "characters cut ...]" in obs.text
    assert len(obs.text) <= ex.config.max_output_chars + 50


def test_output_and_error_share_the_budget(ex: Executor) -> None:
    obs = run1(ex, "print('o' * 1000)\nraise ValueError('e' * 1000)")
    assert obs.status == "error"
    assert obs.text.startswith("ooo") and obs.text.endswith("eee")
    assert len(obs.text) <= ex.config.max_output_chars + 100


def test_unicode_and_lone_surrogates(ex: Executor) -> None:
    assert run1(ex, "print('π ≈ 3.14159')").text == "π ≈ 3.14159"
    obs = run1(ex, "print('a\\ud800b')")
    # A lone surrogate has no UTF-8 form: the model sees it escaped, and the text is valid UTF-8.
    assert obs.status == "ok" and obs.text == "a\\ud800b"
    obs.text.encode("utf-8")


def test_snippet_gets_a_private_working_directory(ex: Executor) -> None:
    with ex.session() as a, ex.session() as b:
        a.run("open('mine.txt', 'w').write('a')")
        assert b.run("import os\nos.path.exists('mine.txt')").text == "False"
        assert a.run("open('mine.txt').read()").text == "'a'"


def test_environment_is_scrubbed(ex: Executor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIR_TOKEN", "abc")
    env = run1(ex, "import os\nsorted(os.environ)").text
    assert "TIR_TOKEN" not in env and "'HOME'" in env


def test_stdout_closed_does_not_break_the_next_cell(ex: Executor) -> None:
    with ex.session() as s:
        assert s.run("import sys\nsys.stdout.close()").status == "ok"
        assert s.run("print('back')").text == "back"


def test_run_rejects_non_strings(ex: Executor) -> None:
    with ex.session() as s, pytest.raises(TypeError, match="must be a str"):
        s.run(b"1 + 1")  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------- styles


def test_reference_style() -> None:
    with Executor(timeout=PATIENT, observation_style="reference", warm_workers=1) as ex, ex.session() as s:
        # The reference's IPython shell: output, then the final expression's display (its README expects 17).
        assert s.run("print('a')\n1 + 1").text == "a\n2"
        assert s.run("from sympy import ceiling, Rational\nceiling(3 * (6 - Rational(1, 2)))").text == "17"
        assert s.run("print('a')\n1 / 0").text == "ZeroDivisionError: division by zero"
        assert s.run("x = 1").text == "Result is not defined"
        assert s.run("print('  b  ')").text == "b"  # stripped
    with Executor(timeout=1.0, observation_style="reference", warm_workers=1) as ex, ex.session() as s:
        assert s.run("while True: pass").text == "Timeout Error"


def test_the_execution_says_what_happened_in_a_live_call(ex: Executor) -> None:
    with ex.session() as s:
        ok = s.run("print('a')\n6 * 7").execution
        failed = s.run("x = [1]\nx[3]").execution
        syntax = s.run("print(").execution
    assert ok is not None and (ok.output.whole, ok.display.whole, ok.error, ok.shell) == ("a\n", "42", None, "python")
    assert failed is not None and failed.error is not None and failed.status == "error"
    assert (failed.error.type, failed.error.when, failed.error.message, failed.error.last_line) == (
        "IndexError", "run", "list index out of range", "IndexError: list index out of range"
    )
    assert failed.error.traceback.whole is not None and "<cell-2>" in failed.error.traceback.whole
    assert syntax is not None and syntax.error is not None
    assert (syntax.error.type, syntax.error.when) == ("SyntaxError", "compile")


def test_a_stopped_call_is_an_error_the_harness_made() -> None:
    with Executor(timeout=1.0, warm_workers=1) as ex, ex.session() as s:
        obs = s.run("while True:\n    pass")
    execution = obs.execution
    assert execution is not None and execution.error is not None and execution.state_lost
    assert (execution.status, execution.error.type, execution.error.when) == ("timeout", "TimeoutError", "stopped")
    assert obs.text == f"TimeoutError: {execution.error.message}\n" + NOTE_LOST


def test_render_and_compose_cut_markers() -> None:
    assert _render(["abcdef", "", 6], 10) == "abcdef"
    assert _render(["ab", "yz", 100], 4) == "ab\n[... 96 characters cut ...]\nyz"
    assert _render(["ab", "yz", 100], 3, keep_tail=True) == "[... 97 characters cut ...]\n" + "z"
    reply = {
        "status": "error",
        "completed": False,
        "out": ["x" * 10, "", 10],
        "display": ["", "", 0],
        "error": ["Traceback\n", "ValueError: v", 5000],
        "error_line": "ValueError: v",
    }
    text = _compose(reply, 40, "full", 1000)
    assert text.startswith("x" * 10) and text.endswith("ValueError: v")
    assert _compose(reply, 40, "reference", 1000) == "ValueError: v"


# -------------------------------------------------------------------------------------------- restarts


def test_crash_loses_state_and_says_so(ex: Executor) -> None:
    with ex.session() as s:
        s.run("x = 5")
        crash = s.run("import os\nos._exit(1)")
        after = s.run("x")
        later = s.run("y = 1\ny")
    assert (crash.status, crash.state_lost) == ("killed", True)
    assert "variables from earlier cells are lost" in crash.text
    assert after.status == "error" and "NameError" in after.text and after.state_lost
    assert (later.text, later.state_lost) == ("1", False)


def test_replay_on_restart_restores_completed_cells() -> None:
    with Executor(timeout=PATIENT, replay_on_restart=True, warm_workers=1) as ex, ex.session() as s:
        s.run("x = 5")
        s.run("y = undefined_name")  # failed: not replayed
        s.run("x += 1")
        crash = s.run("import os\nos._exit(1)")
        after = s.run("x")
    assert (crash.status, crash.state_lost) == ("killed", True)
    assert (after.status, after.text, after.state_lost) == ("ok", "6", False)


def test_cpu_limit_stops_background_threads() -> None:
    # A thread left spinning after its cell burns the per-call CPU budget during the next call, which waits
    # (without computing) until the process has used 8 s of CPU: the 1 s budget must stop it first, however
    # slowly a loaded machine lets the thread run (the wall-clock timeout is far).
    with Executor(timeout=300.0, cpu_seconds=1, warm_workers=0) as ex, ex.session() as s:
        spin = "import threading\nthreading.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()"
        assert s.run(spin).status == "ok"
        obs = s.run("import time\nwhile time.process_time() < 8:\n    time.sleep(0.01)\nprint('survived')")
    assert obs.status == "timeout" and "CPU time" in obs.text and obs.state_lost


def test_least_recently_used_idle_session_is_evicted_at_capacity() -> None:
    with Executor(timeout=PATIENT, max_workers=2, warm_workers=0) as ex:
        a, b, c = ex.session(), ex.session(), ex.session()
        a.run("v = 'a'")
        b.run("v = 'b'")
        assert c.run("v = 'c'\nv").text == "'c'"  # a was the least recently used
        assert b.run("v").text == "'b'"
        evicted = a.run("v")
        assert evicted.state_lost and "NameError" in evicted.text
        assert evicted.text.startswith("[The Python session was restarted")


def test_a_closed_sessions_ending_worker_makes_room_without_evicting() -> None:
    # At capacity, a closed session's worker still counts until the zygote reports its end: a new session
    # waits for that room instead of taking the worker (and the variables) of a live idle one.
    with Executor(timeout=PATIENT, max_workers=2, warm_workers=0) as ex:
        for round in range(5):  # the end of a killed worker is reported within milliseconds: several tries
            a, b = ex.session(), ex.session()
            a.run("v = 'a'")
            b.run("v = 'b'")
            a.close()
            c = ex.session()
            assert c.run("v = 'c'\nv").text == "'c'"
            kept = b.run("v")
            assert (kept.text, kept.state_lost) == ("'b'", False), f"round {round}: {kept.text}"
            b.close()
            c.close()


def test_the_session_limit_is_half_the_available_memory_at_8_mb_each() -> None:
    assert ExecutorConfig().max_workers is None  # chosen when the executor starts
    assert session_limit(16 * 2**30) == 1024  # 8 GB for sessions, 8 MB each
    assert session_limit(5 * 2**30) == 320
    assert session_limit(0) == session_limit(512 * 2**20) == 64  # a small machine still runs a small run
    assert session_limit(2**40) == 4096  # one uid per live worker: isolation.UID_BLOCK at most
    with Executor(timeout=PATIENT, max_workers=3) as ex:
        assert ex.max_workers == ex.config.max_workers == 3  # given: taken as it is


def test_memory_budget_evicts_big_idle_sessions() -> None:
    with Executor(timeout=PATIENT, memory_budget_mb=50, warm_workers=0) as ex:
        small, big = ex.session(), ex.session()
        small.run("s = 1")
        big.run("import numpy as np\nbig = np.ones(20_000_000)")  # 160 MB held while idle
        assert small.run("s").text == "1"
        after = big.run("big.size")
        assert after.state_lost and "NameError" in after.text


def test_dropped_session_frees_its_worker() -> None:
    with Executor(timeout=PATIENT, warm_workers=0) as ex:
        s = ex.session()
        s.run("x = 1")
        worker = s._worker
        assert worker is not None
        del s
        gc.collect()
        assert worker.exited.wait(60.0)


# -------------------------------------------------------------------------------------------- threads, close


def test_many_sessions_from_many_threads(ex: Executor) -> None:
    results: dict[int, list[str]] = {}

    def trajectory(i: int) -> None:
        with ex.session() as s:
            s.run(f"acc = {i}")
            out = [s.run(f"acc += {k}\nacc").text for k in range(1, 4)]
            results[i] = out

    threads = [threading.Thread(target=trajectory, args=(i,)) for i in range(48)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: [str(i + 1), str(i + 3), str(i + 6)] for i in range(48)}


def test_close_from_another_thread_ends_running_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    ex = Executor(timeout=60.0, warm_workers=0)
    in_flight = threading.Semaphore(0)
    exchange = Session._exchange

    def spy(self: Session, worker: object, code: str, n: int) -> object:
        if "while True" in code:  # past run()'s closed check: this call must end as an observation
            in_flight.release()
        return exchange(self, worker, code, n)  # type: ignore[arg-type]

    monkeypatch.setattr(Session, "_exchange", spy)
    observations: list[Observation] = []

    def stuck() -> None:
        with ex.session() as s:
            observations.append(s.run("while True:\n    pass"))

    threads = [threading.Thread(target=stuck) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in threads:
        in_flight.acquire()
    ex.close()
    for t in threads:
        t.join(timeout=60.0)
    assert not any(t.is_alive() for t in threads)
    assert [o.status for o in observations] == ["killed"] * 4
    assert all("closed" in o.text for o in observations)
    with pytest.raises(ExecutorClosed):
        ex.session()


def test_a_killed_zygote_is_replaced() -> None:
    with Executor(timeout=PATIENT, warm_workers=1) as ex, ex.session() as s:
        s.run("x = 1")
        old = ex._zygote
        os.kill(old.proc.pid, signal.SIGKILL)
        old.proc.wait()
        old._thread.join(10.0)  # its reader has seen the end and dropped the orphaned workers
        lost = s.run("x")
        assert lost.state_lost and "NameError" in lost.text
        assert s.run("x = 2\nx").text == "2"
        assert ex._zygote is not old


def _survivors(namespaces: set[str], sessions: set[int]) -> list[int]:
    """Processes still in one of these PID namespaces or process sessions."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                ns = os.readlink(f"/proc/{name}/ns/pid")
                sid = os.getsid(int(name))
            except OSError:
                continue
            if ns in namespaces or sid in sessions:
                found.append(int(name))
    return found


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_an_interpreter_under_tmp_still_imports_lazily() -> None:
    # Each worker's private tmpfs is mounted over /tmp; a virtualenv that lives under /tmp (a CI checkout
    # there) must stay visible beneath it, or a preloaded package cannot import its submodules later.
    base = tempfile.mkdtemp(prefix="tir-venv-", dir="/tmp")
    try:
        venv = os.path.join(base, "venv")
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=60)
        python = os.path.join(venv, "bin", "python")
        site = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        os.makedirs(os.path.join(site, "tirlazy"))
        with open(os.path.join(site, "tirlazy", "__init__.py"), "w"):
            pass
        with open(os.path.join(site, "tirlazy", "later.py"), "w") as f:
            f.write("VALUE = 42\n")
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(os.path.join(site, "harness.pth"), "w") as f:  # the harness and its dependencies
            f.write(f"{repo}\n{sysconfig.get_paths()['purelib']}\n")
        script = (
            "from tir_harness.sandbox.executor import Executor\n"
            "with Executor(preload=('math', 'tirlazy')) as ex, ex.session() as s:\n"
            "    print(s.run('import tirlazy.later\\nprint(tirlazy.later.VALUE)').text)\n"
        )
        done = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=120)
        assert (done.returncode, done.stdout.strip()) == (0, "42"), done.stderr[-2000:]
    finally:
        shutil.rmtree(base)


@pytest.mark.parametrize("isolation", ["auto", "basic"])
def test_close_leaves_no_process_file_or_cgroup(isolation: str) -> None:
    ex = Executor(timeout=PATIENT, isolation=isolation)
    leftovers = [
        "import subprocess\np = subprocess.Popen(['sleep', '1000'])",
        "from multiprocessing import Pool\npool = Pool(2)",
        "import threading, time\nthreading.Thread(target=time.sleep, args=(1000,)).start()",
        "import atexit, os\natexit.register(os.system, 'sleep 1000')",
    ]
    if isolation == "auto":  # only a PID namespace catches a process that leaves its session
        leftovers.append("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)")
    sessions = [ex.session() for _ in leftovers]
    namespaces: set[str] = set()
    sids: set[int] = set()
    for s, code in zip(sessions, leftovers, strict=True):
        assert s.run(code).status == "ok"
        # /proc is the host's: the worker's pid there is also its session id as the host sees it.
        where = s.run("import os\nprint(os.readlink('/proc/self/ns/pid'), os.readlink('/proc/self'))").text
        namespaces.add(where.split()[0])
        sids.add(int(where.split()[1]))
    host_ns = os.readlink("/proc/self/ns/pid")
    zygote = ex._zygote.proc.pid
    base_dir, cgroups = ex._base_dir, [p for p in ex._cgroups.values() if p]
    if isolation == "auto":
        assert len(namespaces) == len(leftovers)  # one PID namespace per session
    else:
        assert namespaces == {host_ns}
    assert len(_survivors(namespaces - {host_ns}, sids)) >= len(leftovers)  # the check can see them
    ex.close()
    assert _state(zygote) is None  # gone and reaped, not a zombie
    assert not os.path.exists(base_dir)
    assert not any(os.path.exists(p) for p in cgroups)
    assert _survivors(namespaces - {host_ns}, sids) == []
    for s in sessions:
        with pytest.raises(ExecutorClosed):
            s.run("1")


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    """The processes of `pids` still running after waiting up to `seconds` for each to end."""
    running = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            if not select.select([fd], [], [], seconds)[0]:  # readable once the process has ended
                running.append(pid)
        finally:
            os.close(fd)
    return running


def test_basic_isolation_still_limits_and_kills() -> None:
    with Executor(timeout=2.0, isolation="basic", warm_workers=1) as ex, ex.session() as s:
        assert ex.isolation["pid_namespace"] is False and ex.isolation["network"] == "host"
        s.run("x = 1")
        assert s._worker is not None
        sid = s._worker.pid2  # the worker's process session: the subprocess below is in it
        obs = s.run("import subprocess\nsubprocess.run(['sleep', '100'])")
        assert obs.status == "timeout" and obs.elapsed >= 2.0
        # The kill took the whole process group: `sleep` ends with the worker, not 100 s later.
        assert _wait_gone(_survivors(set(), {sid}), 30.0) == []
        assert s.run("1 + 1").text == "2"


# ------------------------------------------------------------------------------------ isolation report


def test_isolation_report_is_plain_and_true(ex: Executor) -> None:
    iso = ex.isolation
    assert json.loads(json.dumps(iso)) == iso
    with ex.session() as s:
        in_pid_ns = s.run("import os\nos.getpid()").text == "2"  # W1 is PID 1 of the namespace
        no_net = "Error" in s.run("import socket\nsocket.create_connection(('127.0.0.1', 9), 1)").text
        unprivileged = s.run("import os\nos.getuid() != 0").text == "True"
        limit = s.run("import resource\nresource.getrlimit(resource.RLIMIT_AS)[0] > 0").text == "True"
    assert iso["pid_namespace"] == in_pid_ns
    assert iso["network_namespace"] == no_net
    assert iso["unprivileged_uid"] == unprivileged
    assert limit and "AS" in iso["rlimits"]


def test_strongest_isolation_where_the_machine_offers_it(ex: Executor) -> None:
    # Linux as root (this project's machines and CI): every mechanism must be in force.
    if os.geteuid() != 0 or not os.path.exists("/proc/self/ns/pid"):
        pytest.fail("the executor's isolation is specified for Linux as root; run the suite there")
    iso = ex.isolation
    assert iso["pid_namespace"] and iso["network_namespace"] and iso["unprivileged_uid"]
    assert iso["process_limit"] in ("pids_cgroup_v1", "rlimit_nproc_per_worker_uid")
    assert iso["mount_namespace"] and iso["ipc_namespace"] and iso["filesystem"] == "read_only_view"
    assert iso["session_network_namespace"] and iso["cgroup_namespace"]
    assert iso["seccomp"] == "libseccomp"
    assert {"memory", "cpuacct", "freezer"} <= set(iso["cgroups"])
    assert iso["cpu_limit"] == "cpuacct_cgroup_per_session"
    assert iso["memory_limit"] == "memory_cgroup_v1_per_session"
    assert iso["fallbacks"] == []


def test_network_option_keeps_the_host_network() -> None:
    with Executor(timeout=PATIENT, network=True, warm_workers=0) as ex:
        assert ex.isolation["network"] == "host" and not ex.isolation["session_network_namespace"]


def test_statuses_are_documented() -> None:
    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "executor.md")) as f:
        doc = f.read()
    assert all(f"`{status}`" in doc for status in STATUSES)


def test_serve_keeps_the_api_key_out_of_argv() -> None:
    from tir_harness.engines.serve import split_secrets

    assert split_secrets(["vllm", "serve", "m", "--api-key", "K1", "--port", "1"]) == (
        ["vllm", "serve", "m", "--port", "1"],
        {"VLLM_API_KEY": "K1"},
    )
    assert split_secrets(["vllm", "--api-key=K2"]) == (["vllm"], {"VLLM_API_KEY": "K2"})
