"""pytest-xdist runs that lose a worker or get a signal: each ends, and its report holds what the store holds.

Real `python -m pytest -n 2` processes on a scripted engine (`pytest_tir_make_engine` in the test project's
conftest), driven as tests/test_faults_process.py drives one process: the test acts when the run's output (the
workers' stderr included) shows the progress it waits for, and every wait has a timeout.  The scheduler's
bookkeeping alone is tested without processes at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_faults_process import Run, reported, stored
from tir_harness.plugin.xdist import ShareScheduling, share

CONFTEST = r'''
import os, pathlib, sys, time
from tir_harness.engines.scripted import ScriptedEngine

HERE = pathlib.Path(__file__).parent


def say(text):
    print(text, file=sys.stderr, flush=True)  # a worker's stderr is the run's: the test reads it


def hold(name):
    # Until the test says so (or for good): the file is the test's go-ahead.
    deadline = time.monotonic() + 600
    while not (HERE / name).exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def first(name):
    """True in the first process to get here, once (the file is created atomically)."""
    try:
        os.close(os.open(HERE / name, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


def pytest_collection_modifyitems(config, items):
    if os.environ.get("TIR_TEST_HOLD_COLLECTION") and hasattr(config, "workerinput"):
        say("TEST: collecting")
        hold("release-collection")


def pytest_tir_make_engine(config, model):
    if os.environ.get("TIR_TEST_HOLD_START"):
        say("TEST: engine starting")
        hold("release-start")
    if os.environ.get("TIR_TEST_CRASH_START") and first("crashed"):
        # One worker dies while its engine starts (its replacement does not), once the test saw the other's tests
        # pass: the controller has sent every worker its items by then.
        say("TEST: engine starting, to crash")
        hold("release-start")
        os._exit(1)

    def respond(request):
        prompt = request.prompt
        if "CRASH" in prompt and first("crashed"):
            say("TEST: crashing")
            hold("release-crash")
            os._exit(1)  # as a segfault of the engine would
        if "KILLME" in prompt and not (HERE / "release").exists():
            say(f"TEST: kill pid {os.getpid()}")
            hold("release")
        if "HOLD" in prompt:
            hold("release")
        return f"It is \\boxed{{{prompt.split('ANSWER ')[1].split('.')[0]}}}."

    return ScriptedEngine(respond)
'''

BENCH = """
import pytest

@pytest.mark.tir_jsonl("problems.jsonl", id="id")
def test_mine(problem, solve):
    assert solve(problem).answer == problem.answer
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "project"
    root.mkdir()
    (root / "conftest.py").write_text(CONFTEST)
    (root / "test_bench.py").write_text(BENCH)
    (root / "tmp").mkdir()
    yield root


def problems(root: Path, fast: int, held: int = 0, first: dict[str, str] | None = None, **last: str) -> None:
    """Problems in file (and test) order: `first` ones, `fast` ones, `held` ones, `last` ones (id: kind)."""
    rows = [{"id": name, "question": f"{kind}: ANSWER 99.", "answer": "99"} for name, kind in (first or {}).items()]
    rows += [{"id": f"fast{i}", "question": f"FAST: ANSWER {i}.", "answer": str(i)} for i in range(fast)]
    rows += [{"id": f"held{i}", "question": f"HOLD: ANSWER {i}.", "answer": str(i)} for i in range(held)]
    rows += [{"id": name, "question": f"{kind}: ANSWER 99.", "answer": "99"} for name, kind in last.items()]
    (root / "problems.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


# Seconds: a bound against hanging, never a synchronization.  Three processes start engines and sandboxes here,
# which takes a minute and more on a machine loaded many times over.
WAIT = 180.0


_started: list[Run] = []


@pytest.fixture(autouse=True)
def _no_run_outlives_its_test() -> Iterator[None]:
    yield
    while _started:  # a test that failed before its run ended: the run's processes go with it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(_started.pop().proc.pid, signal.SIGKILL)


def start(project: Path, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    # -s: what the engine says from its thread while a test runs must not go to that test's captured output.
    run = Run(project, "-s", f"--store-dir={tmp_path / 'store'}", f"--report-dir={tmp_path / 'run'}",
              "--max-inflight=8", *args, env={"TMPDIR": str(project / "tmp"), **(env or {})}, workers=2,
              wait=WAIT)  # fmt: skip
    _started.append(run)
    return run


def outcomes(run: Run) -> dict[str, str]:
    """Test id -> PASSED or FAILED, from the verbose lines."""
    # "[gw1] PASSED test_bench.py::test_mine[fast6]" (not the short summary's "FAILED test_bench.py::...").
    found = re.findall(r"\[gw\d+\] (PASSED|FAILED) test_bench\.py::test_mine\[(\w+)\]", run.output)
    assert len(found) == len({name for _, name in found}), run.output  # each test reported once
    return {name: outcome for outcome, name in found}


def assert_report_is_the_store(run: Run, tmp_path: Path) -> list[str]:
    """No traceback; the report holds exactly the records the store holds of this run, each once, with a summary."""
    run_dir = tmp_path / "run"
    assert "Traceback" not in run.output and "INTERNALERROR" not in run.output, run.output
    in_report = reported(run_dir)
    assert len(in_report) == len(set(in_report)), in_report
    assert set(in_report) == stored(tmp_path / "store", run_id=run_dir.name), run.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["accuracy"]["overall"]["n"] == len(in_report)
    return in_report


def manifest(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "run" / "manifest.json").read_text())


# ---------------------------------------------------------------------------- crashed workers


def assert_one_crash(run: Run, tmp_path: Path, total: int) -> None:
    """One test failed naming the crash, every other one passed, the run replaced the worker and reported."""
    code = run.finish()
    assert code == pytest.ExitCode.TESTS_FAILED, run.output
    found = outcomes(run)
    assert len(found) == total, run.output
    (crashed,) = [name for name, outcome in found.items() if outcome == "FAILED"]
    assert re.search(rf"worker 'gw\d+' crashed while running 'test_bench.py::test_mine\[{crashed}\]'", run.output)
    assert "replacing crashed worker" in run.output
    in_report = assert_report_is_the_store(run, tmp_path)
    assert {name for name, outcome in found.items() if outcome == "PASSED"} <= set(in_report)
    assert (tmp_path / "run" / "report.html").exists()


def crash_when_scheduled(run: Run, project: Path) -> None:
    """The first test of one worker is the crash: let it crash once the other worker runs its tests (the
    controller has sent every worker its items by then), with the crashed worker's other items still to run."""
    run.wait_for(r"TEST: crashing")
    run.wait_for(r" PASSED ")
    (project / "release-crash").touch()


def test_a_worker_that_exits_mid_run_is_replaced_and_the_run_ends(project, tmp_path):
    problems(project, first={"crash": "CRASH"}, fast=9)
    run = start(project, tmp_path)
    crash_when_scheduled(run, project)
    assert_one_crash(run, tmp_path, total=10)


def test_a_worker_killed_by_sigkill_is_replaced_and_the_run_ends(project, tmp_path):
    problems(project, first={"victim": "KILLME"}, fast=9)  # the first test of its worker: the others wait behind it
    run = start(project, tmp_path)
    run.wait_for(r"TEST: kill pid \d+")
    run.wait_for(r" PASSED ")  # the other worker runs its tests: the victim's worker has its items too
    pid = int(re.findall(r"TEST: kill pid (\d+)", run.output)[0])
    os.kill(pid, signal.SIGKILL)
    (project / "release").touch()  # the replacement solves the problem without waiting
    assert_one_crash(run, tmp_path, total=10)


def test_a_worker_that_dies_while_its_engine_starts_is_replaced(project, tmp_path):
    problems(project, fast=10)
    run = start(project, tmp_path, env={"TIR_TEST_CRASH_START": "1"})
    run.wait_for(r"TEST: engine starting, to crash")
    run.wait_for(r" PASSED ")  # the other worker runs its tests: the crashing one has its items too
    (project / "release-start").touch()
    assert_one_crash(run, tmp_path, total=10)


def test_without_restarts_a_crashed_workers_share_fails_naming_the_crash(project, tmp_path):
    problems(project, first={"crash": "CRASH"}, fast=9)
    run = start(project, tmp_path, "--max-worker-restart=0")
    crash_when_scheduled(run, project)
    assert run.finish() == pytest.ExitCode.TESTS_FAILED, run.output
    found = outcomes(run)
    assert len(found) == 10, run.output  # every test has an outcome
    failed = {name for name, outcome in found.items() if outcome == "FAILED"}
    # The crashed worker's slot (the crash problem is item 0: slot 0 of 2) ends as failures naming the crash.
    slot = {name for i, name in enumerate(["crash", *(f"fast{i}" for i in range(9))]) if i in share(10, 0, 2)}
    assert failed == slot, run.output
    assert re.search(r"worker 'gw\d+' crashed while running 'test_bench.py::test_mine\[crash\]'", run.output)
    assert re.search(r"tir-harness: not run: worker gw\d+ crashed \(.*\); no worker was left to run it", run.output)
    assert "replacing crashed worker" not in run.output
    in_report = assert_report_is_the_store(run, tmp_path)
    assert {name for name, outcome in found.items() if outcome == "PASSED"} <= set(in_report)


# ---------------------------------------------------------------------------- signals

TARGETS = pytest.mark.parametrize(
    "signum, group", [(signal.SIGINT, True), (signal.SIGTERM, False)], ids=["ctrl-c-to-the-group", "sigterm-to-pytest"]
)


@TARGETS
def test_one_signal_finishes_what_is_in_flight_and_reports_all_of_it(project, tmp_path, signum, group):
    problems(project, fast=6, held=4)  # each worker: 3 fast, then 2 held (one its test waits for, one in flight)
    run = start(project, tmp_path)
    run.wait_for(r" PASSED ", count=6)
    run.signal(signum, group)
    run.wait_for(r"interrupted: finishing the trajectories in flight")
    (project / "release").touch()
    assert run.finish() == pytest.ExitCode.INTERRUPTED, run.output
    in_report = assert_report_is_the_store(run, tmp_path)
    # Everything finished is reported: the held ones whose tests ran, and those only in flight (from the store).
    assert sorted(in_report) == sorted([*(f"fast{i}" for i in range(6)), *(f"held{i}" for i in range(4))])
    assert manifest(tmp_path)["interrupted"] is True
    assert manifest(tmp_path)["from_store"] == len(in_report) - len(outcomes(run))
    assert (tmp_path / "run" / "report.html").exists()
    assert "tir-harness summary" in run.output
    assert list((project / "tmp").glob("tir-exec-*")) == []  # every worker closed its sandbox


@TARGETS
def test_a_second_signal_stops_at_once_and_reports_what_finished(project, tmp_path, signum, group):
    problems(project, fast=6, held=4)
    run = start(project, tmp_path)
    run.wait_for(r" PASSED ", count=6)
    run.signal(signum, group)
    run.wait_for(r"interrupted: finishing the trajectories in flight")
    second = time.monotonic()
    run.signal(signum, group)
    code = run.finish()
    seconds = time.monotonic() - second
    assert code == pytest.ExitCode.INTERRUPTED, run.output
    # The held trajectories never finish: the run ended without them.  The bound is loose on purpose (a loaded
    # machine); waiting for them would take 600 s.
    assert seconds < 20, f"{seconds:.2f} s after the second signal"
    in_report = assert_report_is_the_store(run, tmp_path)
    assert sorted(in_report) == sorted(f"fast{i}" for i in range(6))
    assert manifest(tmp_path)["interrupted"] is True
    assert "tir-harness summary" in run.output


def assert_stopped_before_any_test(run: Run, tmp_path: Path) -> None:
    assert run.finish() == pytest.ExitCode.INTERRUPTED, run.output
    assert "Traceback" not in run.output and "INTERNALERROR" not in run.output, run.output
    assert outcomes(run) == {}
    assert reported(tmp_path / "run") == []
    store = tmp_path / "store"
    assert not (store / "results.sqlite3").exists() or stored(store) == set()  # nothing was generated
    assert "replacing crashed worker" not in run.output


@TARGETS
def test_a_signal_while_the_workers_collect_ends_the_run(project, tmp_path, signum, group):
    problems(project, fast=6)
    run = start(project, tmp_path, env={"TIR_TEST_HOLD_COLLECTION": "1"})
    run.wait_for(r"TEST: collecting", count=2)
    run.signal(signum, group)
    run.wait_for(r"interrupted: finishing the trajectories in flight")
    (project / "release-collection").touch()
    assert_stopped_before_any_test(run, tmp_path)


@TARGETS
def test_a_signal_while_the_engines_start_ends_the_run_before_any_generation(project, tmp_path, signum, group):
    problems(project, fast=6)
    run = start(project, tmp_path, env={"TIR_TEST_HOLD_START": "1"})
    run.wait_for(r"TEST: engine starting", count=2)
    run.signal(signum, group)
    run.wait_for(r"interrupted: finishing the trajectories in flight")
    (project / "release-start").touch()
    assert_stopped_before_any_test(run, tmp_path)


# ---------------------------------------------------------------------------- the scheduler's bookkeeping


class Node:
    """A stand-in for xdist's WorkerController: what ShareScheduling uses of it."""

    def __init__(self, name: str) -> None:
        self.gateway = type("Gateway", (), {"id": name})()
        self.sent: list[int] = []
        self.shut = False

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent += indices

    def shutdown(self) -> None:
        self.shut = True


def test_a_replacement_inherits_the_slot_and_the_unfinished_items_not_the_worker_name():
    sched = ShareScheduling(config=None)  # type: ignore[arg-type]
    sched.slots = 2
    collection = [f"t{i}" for i in range(7)]
    first, second = Node("gw0"), Node("gw1")
    assert sched.configure(first) == {"slot": 0, "slots": 2, "items": None}
    assert sched.configure(second) == {"slot": 1, "slots": 2, "items": None}
    for node in (first, second):
        sched.add_node(node)
        sched.add_node_collection(node, collection)
    sched.schedule()
    assert (first.sent, second.sent) == ([0, 2, 4, 6], [1, 3, 5])
    assert first.shut and second.shut  # everything a worker will run is in its queue at once
    sched.mark_test_complete(second, 1)
    sched.node_down(second, "Not properly terminated")
    assert sched.remove_node(second) == "t3"  # the item it was running: xdist reports it failed
    replacement = Node("gw7")
    assert sched.configure(replacement) == {"slot": 1, "slots": 2, "items": [5]}
    assert not sched.tests_finished  # the replacement has not got its items yet
    sched.add_node(replacement)
    sched.add_node_collection(replacement, collection)
    sched.schedule()
    assert replacement.sent == [5]
    for index in (0, 2, 4):
        sched.mark_test_complete(first, index)
    assert sched.tests_finished
    assert sched.lost() == []


def test_a_crash_nobody_replaces_leaves_its_items_as_lost():
    sched = ShareScheduling(config=None)  # type: ignore[arg-type]
    sched.slots = 2
    nodes = [Node("gw0"), Node("gw1")]
    for node in nodes:
        sched.configure(node)
        sched.add_node(node)
        sched.add_node_collection(node, ["a", "b", "c", "d"])
    sched.schedule()
    sched.node_down(nodes[1], "killed")
    assert sched.remove_node(nodes[1]) == "b"
    with pytest.raises(KeyError):  # a node xdist never added
        sched.remove_node(Node("gw2"))
    assert sched.lost() == [("d", "worker gw1 crashed (killed)", nodes[1])]
