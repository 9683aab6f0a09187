"""run/driver.py: many trajectories in flight on a few threads, each the same as run_trajectory makes it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest

from tir_harness.engines.base import Completion, EngineError, GenerationRequest, SamplingConfig
from tir_harness.engines.scripted import ScriptedEngine
from tir_harness.run.driver import Driver, DriverClosed
from tir_harness.run.loop import LoopConfig, run_trajectory
from tir_harness.run.prompts import FORMATS, PROMPT_TYPES
from tir_harness.sandbox.executor import Executor

WAIT = 60.0
PLAIN = FORMATS["plain"]
CONFIG = LoopConfig(PLAIN, PROMPT_TYPES["tora-fewshot"], SamplingConfig(max_tokens=200, stop=PLAIN.stop))
N = 200


def turns(i: int) -> list[str]:
    return [f"We compute.\n```python\nx = {i} * 7\nprint(x)\n```\n```output\n", f"So \\boxed{{{i * 7}}}."]


SCRIPT = {f"Q{i:03d}?": turns(i) for i in range(N)}


class HeldEngine:
    """Answers as the script says, but only when the test releases the requests it holds."""

    def __init__(self) -> None:
        self.script = ScriptedEngine.by_question(SCRIPT, threaded=False)
        self.cond = threading.Condition()
        self.held: list[tuple[GenerationRequest, Future[Completion]]] = []

    def submit(self, request: GenerationRequest) -> Future[Completion]:
        future: Future[Completion] = Future()
        with self.cond:
            self.held.append((request, future))
            self.cond.notify_all()
        return future

    def release(self, count: int) -> int:
        """Answer every held request, once at least `count` are held; returns how many."""
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.held) >= count, WAIT), f"{len(self.held)} of {count} held"
            held, self.held = self.held, []
        for request, future in held:
            answer = self.script.submit(request)
            if answer.exception() is not None:
                future.set_exception(answer.exception())
            else:
                future.set_result(answer.result())
        return len(held)

    def info(self) -> dict:
        return {}

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def executor():
    with Executor(timeout=5.0) as ex:
        yield ex


def eventually(condition) -> None:
    """Poll `condition` (what the driver's threads do notifies no one here) until it holds, within WAIT."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def view(trajectory):
    return trajectory.end_reason, [(t.text, t.code, t.observation, t.exec_status) for t in trajectory.turns]


def test_hundreds_in_flight_on_two_threads_give_what_run_trajectory_gives(executor):
    engine = HeldEngine()
    before = set(threading.enumerate())
    driver = Driver(engine, executor.session, workers=2)
    futures = {q: driver.start(q, CONFIG, q) for q in SCRIPT}
    engine.release(N)  # every trajectory's first request was out at once
    threads = {t for t in set(threading.enumerate()) - before if t.name.startswith("tir-driver")}
    assert len(threads) <= 2
    engine.release(N)  # and every second one, after its code ran
    got = {q: view(f.result(timeout=WAIT)) for q, f in futures.items()}
    driver.close()
    reference = ScriptedEngine.by_question(SCRIPT, threaded=False)
    expected = {q: view(run_trajectory(q, CONFIG, reference, executor.session, q)) for q in SCRIPT}
    assert got == expected
    assert got["Q003?"][1][0][2] == "21"


def test_max_inflight_holds_back_the_rest_in_order(executor):
    engine = HeldEngine()
    driver = Driver(engine, executor.session, workers=2, max_inflight=3)
    futures = [driver.start(q, CONFIG, q) for q in list(SCRIPT)[:5]]
    with engine.cond:
        assert engine.cond.wait_for(lambda: len(engine.held) == 3, WAIT)
        assert [r.request_id for r, _ in engine.held] == ["Q000?#t0", "Q001?#t0", "Q002?#t0"]
    released = 0
    while released < 10:  # two requests per trajectory
        released += engine.release(1)
    assert [f.result().end_reason for f in futures] == ["answer"] * 5
    driver.close()


def test_an_engine_error_ends_the_trajectory_as_run_trajectory_does(executor):
    class Failing:
        def submit(self, request: GenerationRequest) -> Future[Completion]:
            raise EngineError("http://a:1: HTTP 400: too long")

    driver = Driver(Failing(), executor.session, workers=1)
    trajectory = driver.start("Q000?", CONFIG, "q").result(timeout=WAIT)
    driver.close()
    assert (trajectory.end_reason, trajectory.error) == ("error", "http://a:1: HTTP 400: too long")


# -- sessions as a bounded resource -----------------------------------------------------------------------

DEPENDENT = {f"D{i}?": [f"Set it.\n```python\nx = {i}\n```\n", "Show it.\n```python\nprint(x)\n```\n",
                        f"So \\boxed{{{i}}}."] for i in range(5)}  # fmt: skip


class SecondTurnGate:
    """Answers at once, except the second turns (`print(x)`), which it holds until every trajectory that can
    ask has asked: all that are not parked for want of a session.  Without parking, every trajectory has run
    `x = i` before any runs `print(x)`, so five sessions on two workers must have lost some variables."""

    def __init__(self, total: int) -> None:
        self.script = ScriptedEngine.by_question(DEPENDENT, threaded=False)
        self.cond = threading.Condition()
        self.held: list[tuple[GenerationRequest, Future[Completion]]] = []
        self.remaining = total  # trajectories whose second turn was not answered yet
        self.parked_seen = 0
        self.failure: str | None = None

    def submit(self, request: GenerationRequest) -> Future[Completion]:
        if not request.request_id.endswith("#t1"):
            return self.script.submit(request)
        future: Future[Completion] = Future()
        with self.cond:
            self.held.append((request, future))
            self.cond.notify_all()
        return future

    def release_rounds(self, driver: Driver) -> None:
        """In a thread of the test: release the held second turns round after round (polled, with a deadline)."""
        deadline = time.monotonic() + WAIT
        while self.remaining and time.monotonic() < deadline:
            with self.cond:
                parked = driver.parked
                if not self.held or len(self.held) + parked < self.remaining:
                    self.cond.wait(0.02)  # a poll: parking does not notify the engine
                    continue
                self.parked_seen = max(self.parked_seen, parked)
                held, self.held = self.held, []
                self.remaining -= len(held)
            for request, future in held:
                future.set_result(self.script.submit(request).result())
        if self.remaining:
            self.failure = f"{self.remaining} second turns never came"


def test_a_trajectory_waits_for_a_session_instead_of_taking_a_live_ones():
    with Executor(timeout=5.0, max_workers=2) as executor:
        engine = SecondTurnGate(len(DEPENDENT))
        driver = Driver(engine, executor.session, workers=5, max_sessions=2)
        futures = {q: driver.start(q, CONFIG, q) for q in DEPENDENT}
        releaser = threading.Thread(target=engine.release_rounds, args=(driver,), daemon=True)
        releaser.start()
        trajectories = {q: f.result(timeout=WAIT) for q, f in futures.items()}
        releaser.join(WAIT)
        assert driver.close(timeout=WAIT)
    assert engine.failure is None
    observations = {q: [turn.observation for turn in t.turns] for q, t in trajectories.items()}
    assert observations == {f"D{i}?": ["", str(i), None] for i in range(5)}  # each its own x, never a NameError
    assert engine.parked_seen >= 1  # some trajectories did wait for a session
    assert driver.sessions == 0 and driver.parked == 0


# -- closing ----------------------------------------------------------------------------------------------


class ClosingEngine(HeldEngine):
    """HeldEngine whose close() fails what it holds and every later request, as the real engines do."""

    closed = False

    def submit(self, request: GenerationRequest) -> Future[Completion]:
        if self.closed:
            future: Future[Completion] = Future()
            future.set_exception(EngineError("the engine is closed"))
            return future
        return super().submit(request)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            held, self.held = self.held, []
        for _, future in held:
            future.set_exception(EngineError("the engine is closed"))


def test_close_with_cancel_drops_the_waiting_and_every_future_resolves(executor):
    engine = ClosingEngine()
    questions = list(SCRIPT)[:6]
    driver = Driver(engine, executor.session, workers=2, max_inflight=4, max_sessions=1)
    futures = [driver.start(q, CONFIG, q) for q in questions]
    engine.release(4)  # four first turns with code: one trajectory takes the session, three park
    with engine.cond:  # the one with the session asks for its second turn
        assert engine.cond.wait_for(lambda: len(engine.held) == 1, WAIT)
    eventually(lambda: driver.parked == 3)
    assert (driver.inflight, driver.sessions) == (4, 1)
    engine.close()  # fails the request out: its trajectory ends, and the parked ones' requests fail at once
    assert driver.close(cancel=True, timeout=WAIT)
    assert [f.cancelled() for f in futures] == [False] * 4 + [True] * 2  # the two never started: dropped
    ended = [f.result(timeout=0) for f in futures[:4]]
    assert [t.end_reason for t in ended] == ["error"] * 4
    assert [t.turns[0].observation for t in ended] == [str(i * 7) for i in range(4)]  # each ran its code
    assert (driver.inflight, driver.sessions, driver.parked) == (0, 0, 0)
    with pytest.raises(DriverClosed):
        driver.start(questions[0], CONFIG, "late")


def test_close_without_cancel_runs_the_waiting_first(executor):
    engine = HeldEngine()
    driver = Driver(engine, executor.session, workers=2, max_inflight=1)
    futures = [driver.start(q, CONFIG, q) for q in list(SCRIPT)[:3]]
    closer = threading.Thread(target=driver.close, kwargs={"timeout": WAIT}, daemon=True)
    closer.start()
    released = 0
    while released < 6:  # two requests per trajectory, one trajectory at a time
        released += engine.release(1)
    closer.join(WAIT)
    assert not closer.is_alive()
    assert [f.result(timeout=0).end_reason for f in futures] == ["answer"] * 3
