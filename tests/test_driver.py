"""run/driver.py: many trajectories in flight on a few threads, each the same as run_trajectory makes it."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from tir_harness.engines.base import Completion, EngineError, GenerationRequest, SamplingConfig
from tir_harness.engines.scripted import ScriptedEngine
from tir_harness.run.driver import Driver
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
