"""Faults that need a real pytest process: signals, a full disk, two runs into one report folder.

Each test starts `python -m pytest` on a scripted engine (a conftest with the engine hook) and acts when the
run's output shows the progress it waits for; every wait has a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tir_harness.records.store import ResultStore

WAIT = 60.0  # seconds; a bound against hanging, never a synchronization

CONFTEST = r'''
import os, pathlib, time
from tir_harness.engines.scripted import ScriptedEngine

HERE = pathlib.Path(__file__).parent
PAD = "x" * int(os.environ.get("TIR_TEST_PAD", "0"))


def pytest_tir_make_engine(config, model):
    def respond(request):
        if "HOLD" in request.prompt:
            # Generating until the test says so (or for good): the file is the test's go-ahead.
            deadline = time.monotonic() + 120
            while not (HERE / "release").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        pad = "x" * 2_000_000 if "BIG" in request.prompt else PAD  # more than the small disk holds
        return f"{pad} It is \\boxed{{{request.prompt.split('ANSWER ')[1].split('.')[0]}}}."

    return ScriptedEngine(respond)
'''

BENCH = """
import pytest

@pytest.mark.tir_jsonl("problems.jsonl", id="id")
def test_mine(problem, solve):
    assert solve(problem).answer == problem.answer
"""


class Run:
    """A `python -m pytest` process whose output lines can be waited for."""

    def __init__(
        self, cwd: Path, *args: str, env: dict[str, str] | None = None, workers: int = 0, wait: float = WAIT
    ) -> None:
        self.wait = wait  # seconds: a bound against hanging, never a synchronization
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        xdist = ["-n", str(workers)] if workers else ["-p", "no:xdist"]
        # A session of its own: a signal to its process group reaches the run's processes only, as a terminal's
        # Ctrl-C reaches its foreground group.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-p", "no:randomly", *xdist,
             "--model=scripted", "--prompt-format=plain", *args],
            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})},
            start_new_session=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, count: int = 1) -> None:
        """Until `count` lines matched `pattern` (a regex), or fail with the output so far."""
        deadline = time.monotonic() + self.wait
        seen = sum(bool(re.search(pattern, line)) for line in self.lines)
        while seen < count:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {pattern!r} within {self.wait} s; output:\n" + "\n".join(self.lines))
            if line is None:
                pytest.fail(f"the run ended before {pattern!r}; output:\n" + "\n".join(self.lines))
            self.lines.append(line)
            seen += bool(re.search(pattern, line))

    def signal(self, signum: int, group: bool = False) -> None:
        """`signum` to the pytest process alone, or to its whole process group (as a terminal's Ctrl-C)."""
        if group:
            os.killpg(self.proc.pid, signum)
        else:
            self.proc.send_signal(signum)

    def finish(self) -> int:
        try:
            code = self.proc.wait(self.wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the workers too
            pytest.fail("the run did not end; output:\n" + "\n".join(self.lines))
        while (line := self._queue.get(timeout=self.wait)) is not None:
            self.lines.append(line)
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "project"
    root.mkdir()
    (root / "conftest.py").write_text(CONFTEST)
    (root / "test_bench.py").write_text(BENCH)
    (root / "tmp").mkdir()  # TMPDIR of the run: the sandbox's folders must be gone from it at the end
    yield root


def problems(root: Path, fast: int, held: int) -> None:
    rows = [{"id": f"fast{i}", "question": f"FAST: ANSWER {i}.", "answer": str(i)} for i in range(fast)]
    rows += [{"id": f"held{i}", "question": f"HOLD: ANSWER {i}.", "answer": str(i)} for i in range(held)]
    (root / "problems.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "trajectories.jsonl").read_text().splitlines()]


def stored(store: Path, run_id: str | None = None) -> set[str]:
    """The problems the store holds (those the run `run_id` generated, if given)."""
    with ResultStore(store) as results:
        return {r["problem_id"].rsplit("/", 1)[1] for r in results.records(run_id=run_id)}


def reported(run_dir: Path) -> list[str]:
    path = run_dir / "trajectories.jsonl"
    return [r["problem_id"].rsplit("/", 1)[1] for r in records(run_dir)] if path.exists() else []


def assert_clean_end(run: Run, root: Path, run_dir: Path, store: Path, passed: int) -> None:
    """Interrupted without a traceback; the report holds exactly what the store holds of the run (the tests that
    passed, and the trajectories in flight that finished after the signal), with a summary of it."""
    assert "Traceback" not in run.output and "INTERNALERROR" not in run.output
    assert len(re.findall(r" PASSED", run.output)) == passed
    in_report = reported(run_dir)
    assert sorted(in_report) == sorted(stored(store, run_id=run_dir.name)), run.output
    assert len(in_report) >= passed
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["accuracy"]["overall"]["n"] == summary["accuracy"]["overall"]["correct"] == len(in_report)
    assert json.loads((run_dir / "manifest.json").read_text())["interrupted"] is True
    assert list((root / "tmp").glob("tir-exec-*")) == []  # no sandbox folder left behind


# ---------------------------------------------------------------------------- signals


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_second_signal_stops_at_once_with_a_summary_of_what_finished(project, tmp_path, signum):
    problems(project, fast=3, held=3)
    run_dir = tmp_path / "run"
    run = Run(project, f"--store-dir={tmp_path / 'store'}", f"--report-dir={run_dir}", "--max-inflight=8",
              env={"TMPDIR": str(project / "tmp")})  # fmt: skip
    run.wait_for(r"test_mine\[fast\d\] PASSED", count=3)
    run.proc.send_signal(signum)
    run.wait_for(r"interrupted: finishing the trajectories in flight")  # the held ones never finish
    second = time.monotonic()
    run.proc.send_signal(signum)
    code = run.finish()
    seconds = time.monotonic() - second
    assert code == pytest.ExitCode.INTERRUPTED, run.output
    assert seconds < 2.0, f"{seconds:.2f} s after the second signal"
    assert "tir-harness summary" in run.output
    assert_clean_end(run, project, run_dir, tmp_path / "store", passed=3)
    assert stored(tmp_path / "store") == {"fast0", "fast1", "fast2"}


def test_one_sigterm_finishes_what_is_in_flight_like_ctrl_c(project, tmp_path):
    problems(project, fast=2, held=2)
    run_dir, store = tmp_path / "run", tmp_path / "store"
    run = Run(project, f"--store-dir={store}", f"--report-dir={run_dir}", env={"TMPDIR": str(project / "tmp")})
    run.wait_for(r"test_mine\[fast\d\] PASSED", count=2)
    run.proc.send_signal(signal.SIGTERM)
    run.wait_for(r"interrupted: finishing the trajectories in flight")
    (project / "release").touch()
    assert run.finish() == pytest.ExitCode.INTERRUPTED, run.output
    # The trajectories in flight finished into the store, and into the report (without a test outcome).
    assert_clean_end(run, project, run_dir, store, passed=2)
    assert stored(store) == {"fast0", "fast1", "held0", "held1"} == set(reported(run_dir))
    assert "2 trajectories finished without their test reporting" in run.output
    # A rerun takes them from the store.
    rerun = Run(project, f"--store-dir={store}", f"--report-dir={tmp_path / 'rerun'}")
    assert rerun.finish() == pytest.ExitCode.OK, rerun.output
    assert all(r["cached"] for r in records(tmp_path / "rerun"))


# ---------------------------------------------------------------------------- two runs, one report folder


def test_a_second_run_into_a_live_runs_report_dir_is_refused(project, tmp_path):
    problems(project, fast=1, held=1)
    run_dir = tmp_path / "run"
    first = Run(project, f"--store-dir={tmp_path / 'store'}", f"--report-dir={run_dir}")
    first.wait_for(r"test_mine\[fast0\] PASSED")
    second = Run(project, f"--store-dir={tmp_path / 'store2'}", f"--report-dir={run_dir}")
    assert second.finish() == pytest.ExitCode.USAGE_ERROR, second.output
    assert f"ERROR: tir-harness: --report-dir {run_dir}: in use by another run (pid {first.proc.pid})" in second.output
    (project / "release").touch()
    assert first.finish() == pytest.ExitCode.OK, first.output
    assert [r["problem_id"] for r in records(run_dir)] == ["problems/file/fast0", "problems/file/held0"]


# ---------------------------------------------------------------------------- full disks


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(disk)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_record_the_full_store_cannot_take_fails_its_test_and_stops_the_run(project, tmp_path, small_disk):
    rows = [{"id": f"fast{i}", "question": f"FAST: ANSWER {i}.", "answer": str(i)} for i in range(3)]
    rows += [{"id": "big", "question": "HOLD BIG: ANSWER 7.", "answer": "7"}]
    rows += [{"id": f"after{i}", "question": f"AFTER: ANSWER {i}.", "answer": str(i)} for i in range(3)]
    (project / "problems.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_dir, store = tmp_path / "run", small_disk / "store"
    run = Run(project, f"--store-dir={store}", f"--report-dir={run_dir}", "--max-inflight=1",
              env={"TMPDIR": str(project / "tmp")})  # fmt: skip
    # The big trajectory is generated once the tests before it reported: its test is the one in progress.
    run.wait_for(r"test_mine\[fast2\] PASSED")
    (project / "release").touch()
    code = run.finish()
    assert code == pytest.ExitCode.INTERRUPTED, run.output
    assert "Traceback" not in run.output and "INTERNALERROR" not in run.output
    (stop,) = [line for line in run.lines if "cannot write the result store" in line and "Interrupted" in line]
    assert str(store) in stop and "full" in stop
    # A test reports passed or failed only once its record is durable: the one the store could not take says so.
    passed = set(re.findall(r"test_mine\[(\w+)\] PASSED", run.output))
    failed = set(re.findall(r"test_mine\[(\w+)\] FAILED", run.output))
    assert passed == {"fast0", "fast1", "fast2"} and failed == {"big"}, run.output
    assert "tir-harness: internal error: cannot write the result store: " in run.output
    assert "this trajectory was not kept; a rerun generates it again" in run.output
    in_store = stored(store)
    assert passed <= in_store and "big" not in in_store  # the store holds every result reported
    # The report holds every trajectory the store holds (those generated ahead of their tests too) and the one
    # the store could not take.
    reported = {r["problem_id"].rsplit("/", 1)[1]: r for r in records(run_dir)}
    assert set(reported) == in_store | failed and reported["big"]["end_reason"] == "error"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["accuracy"]["overall"]["n"] == len(reported)
    assert summary["accuracy"]["overall"]["correct"] == len(in_store)
    assert summary["counts"]["engine_errors"] == 1


def test_a_full_report_disk_stops_the_run_with_one_line_and_keeps_every_line_written(project, tmp_path, small_disk):
    problems(project, fast=40, held=0)
    run_dir, store = small_disk / "run", tmp_path / "store"
    run = Run(project, f"--store-dir={store}", f"--report-dir={run_dir}", "--max-inflight=1",
              env={"TIR_TEST_PAD": "30000", "TMPDIR": str(project / "tmp")})  # fmt: skip
    code = run.finish()
    assert code == pytest.ExitCode.INTERRUPTED, run.output
    assert "Traceback" not in run.output and "INTERNALERROR" not in run.output
    assert f"tir-harness: cannot write {run_dir / 'trajectories.jsonl'} (No space left on device)" in run.output
    passed = len(re.findall(r" PASSED", run.output))
    assert 0 < passed < 40
    lines = records(run_dir)  # every line whole: a failed write was cut back
    assert len(lines) == passed - 1
    # Nothing finished is lost: the store has every trajectory of a test that ran, the one whose line did not fit too.
    assert {f"fast{i}" for i in range(passed)} <= stored(store)
    # No room for the summary files: the run says so, and the terminal still shows the counts of pytest.
    if not (run_dir / "summary.json").exists():
        assert "the summary could not be written" in run.output
    assert re.search(rf"\b{passed}\b", run.output.split("tir-harness summary", 1)[1])
