"""The TIR loop and the scheduler, driven by a scripted engine and the real sandboxed executor."""

from __future__ import annotations

import threading

import pytest

from tir_harness.engines.base import EngineError, SamplingConfig
from tir_harness.engines.scripted import ScriptedEngine
from tir_harness.run.loop import LoopConfig, extract_code, run_trajectory
from tir_harness.run.prompts import FORMATS, MAX_CALLS_NOTE, PROMPT_TYPES
from tir_harness.run.scheduler import Scheduler
from tir_harness.sandbox.executor import Executor

PLAIN = FORMATS["plain"]
GEMMA = FORMATS["gemma"]


@pytest.fixture(scope="module")
def executor():
    with Executor(timeout=5.0) as ex:
        yield ex


def config(fmt=PLAIN, prompt_type="tora-fewshot", max_tool_calls=4, max_tokens=200):
    sampling = SamplingConfig(max_tokens=max_tokens, stop=fmt.stop)
    return LoopConfig(fmt, PROMPT_TYPES[prompt_type], sampling, max_tool_calls)


CODE_TURN = "We compute.\n```python\nx = 6 * 7\nprint(x)\n```\n```output\nIGNORED, the engine stops here"


def test_code_is_run_and_its_output_appended(executor):
    engine = ScriptedEngine.by_question({"Q1": [CODE_TURN, "So the answer is \\boxed{42}.\n\n---\nQuestion: next"]})
    trajectory = run_trajectory("Q1", config(), engine, executor.session, "q1")
    first, second = engine.requests
    assert first.prompt.endswith("Question: Q1\nSolution:\n")
    assert first.add_special_tokens and second.continues == first.request_id
    # The stop string cut the turn; the observation block follows the model's own text inline.
    expected_text = "We compute.\n```python\nx = 6 * 7\nprint(x)\n```\n"
    assert second.prompt == first.prompt + expected_text + "```output\n42\n```\n"
    assert trajectory.end_reason == "answer"
    t1, t2 = trajectory.turns
    assert (t1.text, t1.stop_reason, t1.code, t1.observation, t1.exec_status) == (
        expected_text,
        "```output",
        "x = 6 * 7\nprint(x)\n",
        "42",
        "ok",
    )
    assert t2.text == "So the answer is \\boxed{42}.\n\n" and t2.stop_reason == "---" and t2.code is None
    assert trajectory.tool_calls == 1 and trajectory.final_prompt == second.prompt
    assert "```output\n42\n```" in trajectory.response and trajectory.response.endswith("\\boxed{42}.\n\n")


def test_state_lives_across_turns_in_a_chat_format(executor):
    turns = [
        "```python\ny = 5\ny * 2\n```",
        "```python\nprint(y + 1)\n```",
        "The answer is \\boxed{6}.",
    ]
    engine = ScriptedEngine.by_question({"Q2": turns})
    trajectory = run_trajectory("Q2", config(GEMMA, "tora"), engine, executor.session, "q2")
    assert [t.observation for t in trajectory.turns] == ["10", "6", None]
    third = engine.requests[2].prompt
    assert third.endswith(
        "```python\nprint(y + 1)\n```<end_of_turn>\n<start_of_turn>user\n```output\n6\n```<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_tool_call_limit_is_announced_and_enforced(executor):
    always_code = "```python\nprint(1)\n```"
    engine = ScriptedEngine.by_question({"Q3": [always_code] * 5})
    trajectory = run_trajectory("Q3", config(max_tool_calls=2), engine, executor.session, "q3")
    assert trajectory.end_reason == "max_tool_calls"
    assert trajectory.tool_calls == 2 and len(trajectory.turns) == 3
    assert engine.requests[2].prompt.endswith(f"```output\n1\n```\n{MAX_CALLS_NOTE}\n")
    assert MAX_CALLS_NOTE not in engine.requests[1].prompt


def test_errors_in_code_become_observations(executor):
    engine = ScriptedEngine.by_question({"Q4": ["```python\n1/0\n```", "\\boxed{0}"]})
    trajectory = run_trajectory("Q4", config(), engine, executor.session, "q4")
    assert trajectory.turns[0].exec_status == "error"
    assert "ZeroDivisionError" in trajectory.turns[0].observation
    assert trajectory.end_reason == "answer"


@pytest.mark.parametrize(
    ("turns", "kwargs", "end"),
    [
        (["I do not know."], {}, "no_code"),
        (["word " * 50], {"max_tokens": 10}, "length"),
        (["```python\nprint(2)\n```"], {"prompt_type": "cot"}, "no_code"),  # no tool without tora
    ],
)
def test_how_trajectories_end(executor, turns, kwargs, end):
    engine = ScriptedEngine.by_question({"Q5": turns})
    trajectory = run_trajectory("Q5", config(**kwargs), engine, executor.session, "q5")
    assert trajectory.end_reason == end
    assert trajectory.tool_calls == 0


def test_engine_failure_ends_the_trajectory_with_its_reason(executor):
    engine = ScriptedEngine.by_question({"Q6": ["```python\nprint(3)\n```"]})  # no second turn scripted
    trajectory = run_trajectory("Q6", config(), engine, executor.session, "q6")
    assert trajectory.end_reason == "error"
    assert "has no turn 1" in trajectory.error


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("a\n```python\nprint(1)\n```\nb\n```python\nprint(2)\n```\n", "print(2)\n"),
        ("```python\nx = 1\n", "x = 1\n"),  # unclosed: the model stopped at ```output
        ("```python\n\n```", None),
        ("```py\nprint(1)\n```", None),
        ("no code", None),
    ],
)
def test_extract_code(text, code):
    assert extract_code(text) == code


def test_a_short_trajectory_finishes_while_a_long_one_still_runs(executor):
    """No barrier: the one-turn problem must not wait for the four-turn problem's later turns."""
    short_done = threading.Event()

    def respond(request):
        turn = int(request.request_id.rsplit("#t", 1)[1])
        if "LONG" in request.prompt:
            if turn == 1 and not short_done.wait(timeout=30):
                raise EngineError("the short trajectory did not finish while this one was running")
            return "\\boxed{4}" if turn == 3 else f"```python\nprint({turn})\n```"
        return "\\boxed{1}"

    engine = ScriptedEngine(respond)
    scheduler = Scheduler(max_inflight=4)
    try:
        long = scheduler.submit(lambda: run_trajectory("LONG", config(), engine, executor.session, "long"))
        short = scheduler.submit(lambda: run_trajectory("SHORT", config(), engine, executor.session, "short"))
        short_result = short.result(timeout=30)
        short_done.set()
        long_result = long.result(timeout=60)
    finally:
        scheduler.close()
    assert short_result.end_reason == "answer" and len(short_result.turns) == 1
    assert long_result.end_reason == "answer" and len(long_result.turns) == 4
