"""The run's throughput machinery: the in-flight count, group commit of store writes, and kill -9 safety.

Speed itself is measured by benchmarks/perf/harness.py, never here; these tests check what the fast path
must keep: a test reports only what is durable, and the chosen in-flight count is the one recorded.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tir_harness.records.store import ResultStore
from tir_harness.records.writer import GroupWriter
from tir_harness.run.scheduler import DEFAULT_ENGINE_SLOTS, automatic_max_inflight, engine_slots

WAIT = 120.0  # seconds; a bound against hanging, never a synchronization


# -- the in-flight count ---------------------------------------------------------------------------------


def test_in_flight_count_follows_the_engine_batch_within_the_sandbox_limit() -> None:
    assert automatic_max_inflight(1024, 4096) == 1280  # an H100's vLLM batch, with headroom for code turns
    assert automatic_max_inflight(1024, 256) == 256  # never more trajectories than live sessions
    assert automatic_max_inflight(3, None) == 4
    assert automatic_max_inflight(None, None) == automatic_max_inflight(DEFAULT_ENGINE_SLOTS, None)
    assert automatic_max_inflight(1, 1) == 1


def test_engine_slots_reads_the_capacity_only_when_it_is_a_positive_int() -> None:
    class Engine:
        slots: object = 512

        def capacity(self) -> object:
            return self.slots

    engine = Engine()
    assert engine_slots(engine) == 512
    for value in (None, 0, -3, True, "512", 1.5):
        engine.slots = value
        assert engine_slots(engine) is None
    assert engine_slots(object()) is None  # an engine from before `capacity`: unknown


# -- group commit ----------------------------------------------------------------------------------------


def _record(key: str, **extra: object) -> dict[str, object]:
    return {"key": key, "problem_id": f"p/{key}", "sample": 0, "run_id": "r", "model": "m", **extra}


def test_group_writer_commits_every_record_and_resolves_after_it_is_stored(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    writer = GroupWriter(store)
    futures: list = []
    lock = threading.Lock()

    def put_many(start: int) -> None:
        for i in range(start, start + 100):
            future = writer.put(f"k{i}", _record(f"k{i}"))
            with lock:
                futures.append((f"k{i}", future))

    threads = [threading.Thread(target=put_many, args=(n * 100,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    key, future = futures[0]
    future.result(timeout=WAIT)
    with ResultStore(tmp_path / "store") as other:  # another connection sees it: resolved means committed
        assert key in other
    for _, future in futures:
        future.result(timeout=WAIT)
    assert writer.close(timeout=WAIT)
    assert len(store) == 800
    store.close()


def test_a_bad_record_fails_alone_and_the_rest_of_its_group_is_stored(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    gate = threading.Event()
    real_put_many = store.put_many

    def held_put_many(items: list) -> None:
        gate.wait(WAIT)  # the first commit waits, so the next records queue up into one group
        real_put_many(items)

    store.put_many = held_put_many  # type: ignore[method-assign]
    writer = GroupWriter(store)
    first = writer.put("k0", _record("k0"))
    group = [writer.put(f"k{i}", _record(f"k{i}")) for i in range(1, 4)]
    bad = writer.put("bad", _record("bad", score=float("nan")))  # not plain JSON: refused by the store
    group.append(writer.put("k4", _record("k4")))
    gate.set()
    first.result(timeout=WAIT)
    for future in group:
        assert future.result(timeout=WAIT) is None
    with pytest.raises(ValueError, match="not plain JSON"):
        bad.result(timeout=WAIT)
    assert writer.close(timeout=WAIT)
    assert sorted(store.get_many([f"k{i}" for i in range(5)] + ["bad"])) == [f"k{i}" for i in range(5)]
    store.close()


def test_close_commits_what_is_queued_and_refuses_more(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    writer = GroupWriter(store)
    futures = [writer.put(f"k{i}", _record(f"k{i}")) for i in range(50)]
    assert writer.close(timeout=WAIT)
    assert all(f.done() and f.exception() is None for f in futures)
    with pytest.raises(RuntimeError):
        writer.put("late", _record("late"))
    assert len(store) == 50
    store.close()


# -- through the plugin ----------------------------------------------------------------------------------

CONFTEST = r'''
import os
from concurrent.futures import Future

from tir_harness.engines.base import Completion

SLOTS = int(os.environ.get("TIR_TEST_SLOTS", "0")) or None


class Instant:
    def capacity(self):
        return SLOTS

    def submit(self, request):
        answer = request.prompt.split("ANSWER ")[1].split(".")[0]
        future = Future()
        future.set_result(Completion(text=f"It is \\boxed{{{answer}}}.", finish_reason="stop"))
        return future

    def info(self):
        return {"kind": "instant"}

    def close(self):
        pass


def pytest_tir_make_engine(config, model):
    return Instant()
'''

BENCH = """
import pytest

@pytest.mark.tir_jsonl("problems.jsonl", id="id")
def test_mine(problem, solve):
    assert solve(problem).answer == problem.answer
"""


def _project(tmp_path: Path, problems: int) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(CONFTEST)
    (project / "test_bench.py").write_text(BENCH)
    with open(project / "problems.jsonl", "w") as f:
        for i in range(problems):
            f.write(json.dumps({"id": f"q{i:04d}", "question": f"ANSWER {i}. What?", "answer": str(i)}) + "\n")
    return project


def _pytest(project: Path, *args: str, env: dict[str, str] | None = None) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist",
            "--prompt-format=plain", f"--store-dir={project / 'store'}", *args]  # fmt: skip


@pytest.mark.parametrize(("slots", "option", "expected"), [(3, None, 4), (3, "2", 2), (0, None, None)])
def test_the_manifest_records_the_in_flight_count_chosen(
    tmp_path: Path, slots: int, option: str | None, expected: int | None
) -> None:
    project = _project(tmp_path, 5)
    run_dir = tmp_path / "run"
    args = [f"--report-dir={run_dir}", *([f"--max-inflight={option}"] if option else [])]
    done = subprocess.run(
        _pytest(project, *args), cwd=project, capture_output=True, text=True, timeout=WAIT,
        env={**os.environ, "TIR_TEST_SLOTS": str(slots)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    sessions = manifest["engine"]["max_sessions"]  # what the machine's memory allowed: 64 to 4096
    assert 64 <= sessions <= 4096
    # Unknown engine slots: vLLM's usual 256 and headroom, within the session limit.
    assert manifest["engine"]["max_inflight"] == (expected or min(320, sessions))
    assert manifest["options"]["max_inflight"] == (int(option) if option else None)


@pytest.mark.parametrize("after", [1, 40, 250])
def test_kill_9_loses_no_test_reported_as_finished(tmp_path: Path, after: int) -> None:
    """Every test whose result line was printed has its trajectory in the store, whatever the group commits
    had in flight when the process died; the rerun takes them from there and generates only the rest."""
    project = _project(tmp_path, 400)
    proc = subprocess.Popen(
        _pytest(project, "-v", f"--report-dir={tmp_path / 'killed'}"), cwd=project, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    reported: list[str] = []
    deadline = time.monotonic() + WAIT
    try:
        while len(reported) < after:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line is not None, "the run ended before it was killed"
            if " PASSED" in line and "::test_mine[" in line:
                reported.append(line.split("::test_mine[", 1)[1].split("]", 1)[0])
        proc.send_signal(signal.SIGKILL)
        proc.wait(WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)
    # Lines already in the pipe were reported too: the process printed them before it died.
    while (line := lines.get(timeout=WAIT)) is not None:
        if " PASSED" in line and "::test_mine[" in line:
            reported.append(line.split("::test_mine[", 1)[1].split("]", 1)[0])
    with ResultStore(project / "store", create=False) as store:
        stored = {record["problem_id"] for record in store.records()}
    missing = [name for name in reported if f"problems/file/{name}" not in stored]
    assert not missing, f"reported as finished but not in the store: {missing[:5]} ({len(missing)} of {len(reported)})"

    rerun = subprocess.run(
        _pytest(project, f"--report-dir={tmp_path / 'rerun'}"), cwd=project, capture_output=True, text=True,
        timeout=WAIT,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stdout[-2000:]
    records = [json.loads(line) for line in (tmp_path / "rerun" / "trajectories.jsonl").read_text().splitlines()]
    assert len(records) == 400
    cached = {r["problem_id"] for r in records if r["cached"]}
    assert {f"problems/file/{name}" for name in reported} <= cached


HELD_CONFTEST = r'''
import json
import os
import threading
from concurrent.futures import Future

from tir_harness.engines.base import Completion

COUNT = int(os.environ["TIR_TEST_HOLD"])
OUT = os.environ["TIR_TEST_OUT"]


class Held:
    """Holds every request until COUNT are out at once, counts the process's threads then, and answers all."""

    def __init__(self):
        self.cond = threading.Condition()
        self.held = []
        self.released = False
        threading.Thread(target=self.deadline, daemon=True).start()

    def deadline(self):
        with self.cond:
            if not self.cond.wait_for(lambda: self.released, 120):
                self.release("the requests never were all out at once")

    def release(self, failure=None):  # lock held
        with open(OUT, "w") as f:
            json.dump({"held": len(self.held), "threads": threading.active_count(), "failure": failure}, f)
        self.released = True
        self.cond.notify_all()
        for request, future in self.held:
            self.answer(request, future)
        self.held = []

    def answer(self, request, future):
        answer = request.prompt.split("ANSWER ")[1].split(".")[0]
        future.set_result(Completion(text=f"It is \\boxed{{{answer}}}.", finish_reason="stop"))

    def submit(self, request):
        future = Future()
        with self.cond:
            if self.released:
                self.answer(request, future)
            else:
                self.held.append((request, future))
                if len(self.held) >= COUNT:
                    self.release()
        return future

    def info(self):
        return {"kind": "held"}

    def close(self):
        pass


def pytest_tir_make_engine(config, model):
    return Held()
'''


def test_hundreds_of_trajectories_in_flight_hold_few_threads(tmp_path: Path) -> None:
    """Issue 23: the plugin keeps many trajectories in flight without a thread each (a thread per trajectory
    would be 300 here)."""
    project = _project(tmp_path, 300)
    (project / "conftest.py").write_text(HELD_CONFTEST)
    out = tmp_path / "held.json"
    done = subprocess.run(
        _pytest(project, "--max-inflight=300", f"--report-dir={tmp_path / 'run'}"), cwd=project,
        capture_output=True, text=True, timeout=WAIT,
        env={**os.environ, "TIR_TEST_HOLD": "300", "TIR_TEST_OUT": str(out)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]
    seen = json.loads(out.read_text())
    assert seen["failure"] is None and seen["held"] == 300
    assert seen["threads"] < 100, seen
