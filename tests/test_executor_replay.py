"""Session.replay(): the reference's executor inside the sandbox, with the sandbox's limits.

What the replay shows is checked against the reference itself in test_reference_observations.py; here: a fresh
interpreter per replay, the limits (time for the whole replay, CPU, memory, output), what the `Execution`
says, and that nothing a replayed cell does reaches the harness.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tir_harness.sandbox.execution import COMPILE, IPYTHON, RUN, SETUP, STOPPED
from tir_harness.sandbox.executor import Executor

PATIENT = 120.0


@pytest.fixture(scope="module")
def ex() -> Iterator[Executor]:
    with Executor(timeout=PATIENT, replay_timeout=PATIENT, observation_style="reference", warm_workers=1) as executor:
        yield executor


def test_each_replay_starts_from_a_fresh_interpreter(ex: Executor) -> None:
    with ex.session() as s:
        first = s.replay(["secret = 41\n", "secret + 1\n"])
        again = s.replay(["print(secret)\n"])  # the previous replay's variables are gone with its worker
        live = s.run("x = 1")  # live calls of the same session get a worker of their own
        after = s.replay(["print(x)\n"])
    assert (first.status, first.text) == ("ok", "42")
    assert again.status == "error" and again.text == "NameError: name 'secret' is not defined"
    assert live.status == "ok" and after.text == "NameError: name 'x' is not defined"


def test_the_execution_says_what_happened(ex: Executor) -> None:
    with ex.session() as s:
        ran = s.replay(["print('a')\n", "print('b')\n1 / 0\n"]).execution
        syntax = s.replay(["print(\n"]).execution
        refused = s.replay(["x = input()\n"]).execution
        nothing = s.replay([]).execution
    assert ran is not None and ran.shell == IPYTHON and ran.cells == 2
    assert ran.error is not None and (ran.error.type, ran.error.when, ran.error.message) == (
        "ZeroDivisionError", RUN, "division by zero"
    )
    assert ran.output.whole is not None and ran.output.whole.startswith("b\n")  # only the last cell's output
    assert syntax is not None and syntax.error is not None and syntax.error.when == COMPILE
    assert refused is not None and refused.error is not None and refused.error.when == SETUP
    assert nothing is not None and nothing.cells == 0 and nothing.status == "error"


def test_the_whole_replay_has_one_time_limit() -> None:
    with Executor(replay_timeout=2.0, observation_style="reference", warm_workers=1) as ex, ex.session() as s:
        stuck = s.replay(["x = 1\n", "while True:\n    pass\n"])
        fine = s.replay(["print('next')\n"])
    assert (stuck.status, stuck.text) == ("timeout", "Timeout Error")
    assert stuck.execution is not None and stuck.execution.error is not None
    assert stuck.execution.error.when == STOPPED and "2 s" in stuck.execution.error.message
    assert (fine.status, fine.text) == ("ok", "next")


def test_a_replayed_flood_of_output_is_stopped(ex: Executor) -> None:
    with ex.session() as s:
        flood = s.replay(["while True:\n    print('x' * 1000)\n"])
    assert flood.status == "output_limit"
    assert flood.text.endswith("characters of output; the code was stopped")
    assert len(flood.text) < ex.config.max_output_chars + 200


def test_a_fork_in_a_replayed_cell_never_answers(ex: Executor) -> None:
    with ex.session() as s:
        obs = s.replay(["import os\npid = os.fork()\nprint('parent' if pid else 'child')\n"])
        assert s.replay(["print(1 + 1)\n"]).text == "2"
    assert obs.status == "ok" and obs.text == "parent"


def test_a_replay_that_kills_its_worker_is_reported(ex: Executor) -> None:
    with ex.session() as s:
        obs = s.replay(["import os\nos._exit(3)\n"])
        assert s.replay(["print('alive')\n"]).text == "alive"
    assert obs.status == "killed" and "exited (code 3)" in obs.text


def test_replay_needs_a_reference_mode_style() -> None:
    with Executor(warm_workers=0) as ex, ex.session() as s:
        with pytest.raises(RuntimeError, match="needs a style of mode 'reference'"):
            s.replay(["print(1)\n"])
        with pytest.raises(TypeError, match="blocks must be strs"):
            s.replay([b"print(1)"])  # type: ignore[list-item]
