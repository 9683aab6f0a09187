"""The no-barrier loop's mechanism, against an engine that counts steps instead of seconds.

`StepEngine` batches the way vLLM does: every step gives one token (here: one word of the scripted text) to
each request in the engine, a request joins at the step after it is submitted and leaves when its text is
done.  Before each step it waits until every trajectory between two turns has sent its next one, so the
steps it takes are those of an ideal harness, and whatever the harness holds back shows: a barrier, a cap on
trajectories in flight or a lock across trajectories leaves a turn expected and not sent, and the engine
records it as late when its patience runs out (a bound against hanging, far above a turn's harness work).

What is asserted is the mechanism behind benchmarks/perf/loop.py's speed-up, never a wall-clock ratio: the
batch size of every step is the one a harness without barriers gives this workload (each trajectory's turns
back to back), no turn was late, and the median time from a turn's completion to the trajectory's next
request stays far below what a turn of a real engine takes.  The workload is built so that the cost
model of a step (a fixed part and a part growing with the square root of its batch) makes the no-barrier
schedule about 2.5 times cheaper than the round-based one: docs/throughput.md.
"""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
from concurrent.futures import Future
from typing import Any

import pytest

from tir_harness.engines.base import Completion, GenerationRequest, SamplingConfig
from tir_harness.run.driver import Driver
from tir_harness.run.loop import LoopConfig
from tir_harness.run.prompts import FORMATS, PROMPT_TYPES
from tir_harness.run.scheduler import automatic_max_inflight, driver_workers
from tir_harness.sandbox.executor import Executor

PATIENCE = 20.0  # seconds the engine waits for a turn it expects; never reached when nothing holds turns back
GAP_BOUND = 1.0  # seconds; the median harness gap measured here is ~10 ms idle and ~50 ms on a loaded machine
MAX_TOKENS = 256
PLAIN = FORMATS["plain"]


def _words(n: int, word: str) -> str:
    return " ".join([word] * n)


def make_script(problems: int = 16) -> dict[str, list[str]]:
    """Per question, its turns: code turns then an answer.  Short turns mostly, and one long turn in each
    trajectory, in a different round for different trajectories: a barrier waits for a long turn in every
    round, a trajectory without one waits only for its own."""
    script = {}
    for k in range(problems):
        code_turns = 1 + k % 3
        long_turn = k % (code_turns + 1)
        turns = []
        for t in range(code_turns + 1):
            n = 150 + 7 * k if t == long_turn else 6 + (5 * k + 3 * t) % 17
            if t < code_turns:
                turns.append(f"{_words(n, 'step')}\n```python\nx{t} = {k} + {t}\nprint(x{t})\n```\n```output\n")
            else:
                turns.append(f"{_words(n, 'so')} \\boxed{{{k}}}.\n\n---\nQuestion:")
        script[f"Q{k:02d}:"] = turns
    return script


def cut(text: str, sampling: SamplingConfig) -> tuple[str, str, str | None, int]:
    """What the engine returns for a scripted text: (text, finish reason, stop reason, tokens)."""
    end, stop_reason = len(text), None
    for stop in sampling.stop:
        at = text.find(stop)
        if 0 <= at < end:
            end, stop_reason = at, stop
    words = text[:end].split()
    if len(words) > sampling.max_tokens:
        return " ".join(words[: sampling.max_tokens]), "length", None, sampling.max_tokens
    return text[:end], "stop", stop_reason, max(1, len(words))


class StepEngine:
    """A continuous-batching engine whose time is counted in steps (see the module docstring)."""

    def __init__(self, script: dict[str, list[str]], patience: float = PATIENCE) -> None:
        self.script = script
        self.patience = patience
        self.max_num_seqs = 256
        self.batches: list[int] = []  # requests in the engine at each step
        self.gaps: list[float] = []  # seconds from a turn's completion to the trajectory's next request
        self.late: list[str] = []  # turns the engine stopped waiting for
        self._cond = threading.Condition()
        self._running: list[list[Any]] = []  # [tokens left, future, completion]
        self._expected = {(q, 0) for q in script}
        self._completed: dict[tuple[str, int], float] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="step-engine", daemon=True)
        self._thread.start()

    def submit(self, request: GenerationRequest) -> Future[Completion]:
        question = next(q for q in self.script if q in request.prompt)
        turn = int(request.request_id.rsplit("#t", 1)[1])
        text, finish, stop_reason, tokens = cut(self.script[question][turn], request.sampling)
        completion = Completion(text, finish, stop_reason, len(request.prompt.split()), tokens)
        future: Future[Completion] = Future()
        with self._cond:
            if (question, turn - 1) in self._completed:
                self.gaps.append(time.perf_counter() - self._completed.pop((question, turn - 1)))
            self._expected.discard((question, turn))
            self._running.append([tokens, future, (question, turn, completion)])
            self._cond.notify_all()
        return future

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                deadline = time.monotonic() + self.patience
                while self._expected and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:  # the harness holds turns back: the test fails, and from now on fails fast
                        self.late += sorted(f"{q}#t{t}" for q, t in self._expected)
                        self._expected.clear()
                        self.patience = 0.01  # still waits, so that submitters get the lock between steps
                    else:
                        self._cond.wait(left)
                if not self._running:
                    self._cond.wait()  # idle until a request comes or close()
                    continue
                self.batches.append(len(self._running))
                for entry in self._running:
                    entry[0] -= 1
                for entry in [e for e in self._running if e[0] == 0]:
                    self._running.remove(entry)
                    question, turn, completion = entry[2]
                    if turn + 1 < len(self.script[question]):
                        self._expected.add((question, turn + 1))
                    self._completed[(question, turn)] = time.perf_counter()
                    entry[1].set_result(completion)

    def info(self) -> dict[str, Any]:
        return {"kind": "step-engine"}

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(PATIENCE)


def no_barrier_batches(script: dict[str, list[str]], sampling: SamplingConfig) -> list[int]:
    """The batch of every step when each trajectory's turns follow each other with nothing in between."""
    lengths = [sum(cut(text, sampling)[3] for text in turns) for turns in script.values()]
    return [sum(1 for n in lengths if n > step) for step in range(max(lengths))]


def round_batches(script: dict[str, list[str]], sampling: SamplingConfig) -> list[int]:
    """The same with a barrier per round: each round lasts as long as its longest turn."""
    turns = [[cut(text, sampling)[3] for text in texts] for texts in script.values()]
    batches = []
    for r in range(max(map(len, turns))):
        lengths = [t[r] for t in turns if len(t) > r]
        batches += [sum(1 for n in lengths if n > step) for step in range(max(lengths))]
    return batches


def cost(batches: list[int]) -> float:
    """Engine time when a step costs a fixed part plus a part growing with the square root of its batch (on
    vLLM's CPU build a step of 8 sequences takes about 1.25 times one of a single sequence; here 1.37)."""
    return sum(1 + math.sqrt(b) / 4 for b in batches)


def loop_config() -> LoopConfig:
    return LoopConfig(PLAIN, PROMPT_TYPES["tora-fewshot"], SamplingConfig(max_tokens=MAX_TOKENS, stop=PLAIN.stop))


def assert_no_barrier(engine: StepEngine, script: dict[str, list[str]]) -> None:
    sampling = loop_config().sampling
    assert engine.late == [], f"turns held back by the harness: {engine.late}"
    assert engine.batches == no_barrier_batches(script, sampling)
    continued = sum(len(turns) - 1 for turns in script.values())
    assert len(engine.gaps) == continued
    assert statistics.median(engine.gaps) < GAP_BOUND, f"median gap {statistics.median(engine.gaps):.3f} s"


def test_the_workload_rewards_no_barrier_under_a_sublinear_batch_cost():
    """The scenario itself: the same turns cost about half as much without barriers (what the next test's
    batches buy), and the mean batch per step is larger."""
    script, sampling = make_script(), loop_config().sampling
    free, rounds = no_barrier_batches(script, sampling), round_batches(script, sampling)
    assert sum(free) == sum(rounds)  # the same tokens
    assert cost(rounds) / cost(free) > 2.0
    assert statistics.fmean(free) > 2.0 * statistics.fmean(rounds)


def test_trajectories_join_the_running_batch_with_no_turn_held_back():
    script = make_script()
    engine = StepEngine(script)
    config = loop_config()
    inflight = automatic_max_inflight(engine.max_num_seqs, 256)
    try:
        with Executor(timeout=10.0) as executor:
            driver = Driver(engine, executor.session, workers=driver_workers(inflight), max_inflight=inflight)
            futures = [driver.start(q, config, f"p{q[1:3]}") for q in script]
            trajectories = [f.result(timeout=PATIENCE * 10) for f in futures]
            driver.close(timeout=PATIENCE * 10)
    finally:
        engine.close()
    assert [t.end_reason for t in trajectories] == ["answer"] * len(script)
    assert [t.tool_calls for t in trajectories] == [len(turns) - 1 for turns in script.values()]
    assert_no_barrier(engine, script)


ENGINES: list[StepEngine] = []  # made by the inner pytest run's conftest; this module outlives that run

PLUGIN_CONFTEST = """
from tests.test_loop_speed import ENGINES, StepEngine, make_script

def pytest_tir_make_engine(config, model):
    ENGINES.append(StepEngine(make_script()))
    return ENGINES[-1]
"""

PLUGIN_BENCH = """
import pytest

@pytest.mark.tir_jsonl("problems.jsonl", id="id")
def test_step(problem, solve):
    assert solve(problem).answer == problem.answer
"""


def test_through_the_plugin_store_and_reports_no_turn_waits(pytester: pytest.Pytester, tmp_path):
    """The same through pytest: the runner, the result store's group commit and the report writers."""
    ENGINES.clear()
    script = make_script()
    problems = [{"id": q[1:3], "question": q, "answer": str(k)} for k, q in enumerate(script)]
    pytester.makeconftest(PLUGIN_CONFTEST)
    pytester.makepyfile(test_bench=PLUGIN_BENCH)
    pytester.path.joinpath("problems.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--model=scripted", "--prompt-format=plain", "--prompt-type=tora-fewshot",
        f"--max-tokens={MAX_TOKENS}", f"--store-dir={tmp_path / 'store'}", f"--report-dir={tmp_path / 'report'}",
    )  # fmt: skip
    result.assert_outcomes(passed=len(script))
    engine = ENGINES.pop()
    assert ENGINES == []
    assert_no_barrier(engine, script)
