"""The TIR loop and the driver, driven by a scripted engine and the real sandboxed executor."""

from __future__ import annotations

import threading

import pytest

from tir_harness.engines.base import EngineError, SamplingConfig
from tir_harness.engines.scripted import ScriptedEngine
from tir_harness.run.driver import Driver
from tir_harness.run.loop import (
    MAX_TURN_CHARS,
    MIN_TURN_CHARS,
    LoopConfig,
    extract_code_blocks,
    reference_blocks,
    run_trajectory,
    sample_seed,
)
from tir_harness.run.prompts import FORMATS, MAX_CALLS_NOTE, PROMPT_TYPES
from tir_harness.sandbox.executor import Executor

PLAIN = FORMATS["plain"]
GEMMA = FORMATS["gemma"]


@pytest.fixture(scope="module")
def executor():
    with Executor(timeout=5.0) as ex:
        yield ex


def config(fmt=PLAIN, prompt_type="tora-fewshot", max_tool_calls=4, max_tokens=200, max_turn_chars=MAX_TURN_CHARS):
    sampling = SamplingConfig(max_tokens=max_tokens, stop=fmt.stop)
    return LoopConfig(fmt, PROMPT_TYPES[prompt_type], sampling, max_tool_calls, max_turn_chars)


CODE_TURN = "We compute.\n```python\nx = 6 * 7\nprint(x)\n```\n```output\nIGNORED, the engine stops here"


def test_code_is_run_and_its_output_appended(executor):
    engine = ScriptedEngine.by_question({"Q1": [CODE_TURN, "So the answer is \\boxed{42}.\n\n---\nQuestion: next"]})
    trajectory = run_trajectory("Q1", config(), engine, executor.session, "q1")
    first, second = engine.requests
    assert first.prompt.endswith("Question: Q1\nSolution:\n")
    assert first.add_special_tokens and second.continues == first.request_id
    # The stop string cut the turn; the right-stripped text is followed by the observation block inline.
    expected_text = "We compute.\n```python\nx = 6 * 7\nprint(x)\n```\n"
    assert second.prompt == first.prompt + expected_text.rstrip() + "\n```output\n42\n```\n"
    assert trajectory.end_reason == "answer"
    t1, t2 = trajectory.turns
    assert (t1.text, t1.stop_reason, t1.code, t1.observation, t1.exec_status) == (
        expected_text,
        "```output",
        "x = 6 * 7\nprint(x)\n",
        "42",
        "ok",
    )
    assert t1.code_blocks == ["x = 6 * 7\nprint(x)\n"]
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


def test_tool_call_limit_ends_without_another_generation(executor):
    always_code = "```python\nprint(1)\n```"
    engine = ScriptedEngine.by_question({"Q3": [always_code] * 5})
    trajectory = run_trajectory("Q3", config(max_tool_calls=2), engine, executor.session, "q3")
    assert trajectory.end_reason == "max_tool_calls"
    assert trajectory.tool_calls == 2 and len(trajectory.turns) == 2 and len(engine.requests) == 2
    assert all(MAX_CALLS_NOTE not in r.prompt for r in engine.requests)
    # The note closes the conversation after the last observation, as the reference writes it.
    assert trajectory.conversation == trajectory.final_prompt + MAX_CALLS_NOTE
    assert trajectory.final_prompt.endswith("```python\nprint(1)\n```\n```output\n1\n```\n")


def test_every_block_of_a_turn_runs_and_the_last_one_is_observed(executor):
    turn = "First:\n```python\na = 20\nprint('set')\n```\nThen:\n```python\nprint(a + 1)\n```"
    engine = ScriptedEngine.by_question({"Q7": [turn, "\\boxed{21}"]})
    trajectory = run_trajectory("Q7", config(GEMMA, "tora"), engine, executor.session, "q7")
    first = trajectory.turns[0]
    assert first.observation == "21" and first.exec_status == "ok"
    assert first.code_blocks == ["a = 20\nprint('set')\n", "print(a + 1)\n"]
    assert first.code == "a = 20\nprint('set')\n\nprint(a + 1)\n"
    assert trajectory.tool_calls == 1


def test_a_turn_cut_at_max_tokens_inside_its_code_runs_the_code_and_the_trajectory_goes_on(executor):
    # The reference's rule looks at the text only (no `boxed`, a ```python block), not at the finish reason.
    # This is what gave problem 7 of benchmarks/perf/loop.py a second turn (docs/throughput.md).
    cut_turn = "We compute.\n```python\nprint(6 * 7)\n" + "y = 1\n" * 50  # 6 words, then 3 a line
    engine = ScriptedEngine.by_question({"Q8": [cut_turn, "So \\boxed{42}."]})
    trajectory = run_trajectory("Q8", config(max_tokens=30), engine, executor.session, "q8")
    assert [t.finish_reason for t in trajectory.turns] == ["length", "stop"]
    assert trajectory.turns[0].text.endswith("y = 1") and trajectory.turns[0].observation == "42"
    assert trajectory.end_reason == "answer" and trajectory.tool_calls == 1


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
        (["\\boxed is near\n```python\nprint(2)\n```"], {}, "answer"),  # the reference's substring test
        (["```python\nprint(2)\n```"], {"max_tool_calls": 0}, "max_tool_calls"),
    ],
)
def test_how_trajectories_end(executor, turns, kwargs, end):
    engine = ScriptedEngine.by_question({"Q5": turns})
    trajectory = run_trajectory("Q5", config(**kwargs), engine, executor.session, "q5")
    assert trajectory.end_reason == end
    assert trajectory.tool_calls == 0


def test_a_turn_longer_than_the_limit_is_cut_around_a_marker_before_anything_reads_it(executor):
    # A server gone wrong (or a model looping) can send megabytes in one completion; the code is at its end.
    huge = "A" * 50_000 + "\n```python\nprint(6 * 7)\n```"
    engine = ScriptedEngine.by_question({"Q9": [huge, "So \\boxed{42}."]})
    trajectory = run_trajectory("Q9", config(max_turn_chars=1000), engine, executor.session, "q9")
    first, second = trajectory.turns
    assert first.text_cut and first.original_chars == len(huge)
    marker = f"\n[... {len(huge) - 1000} characters cut ...]\n"
    assert first.text == huge[:500] + marker + huge[-500:]
    assert first.observation == "42"  # the tail's code still ran
    assert not second.text_cut and second.original_chars is None and trajectory.end_reason == "answer"
    # What the conversation, the record and the next prompt carry is the cut text.
    assert len(engine.requests[1].prompt) < len(engine.requests[0].prompt) + 1000 + len(marker) + 100
    record = trajectory.to_dict()
    assert huge not in record["response"] and marker in record["response"]
    assert record["turns"][0]["text_cut"] is True and record["turns"][0]["original_chars"] == len(huge)


def test_a_turn_limit_below_the_minimum_is_refused():
    with pytest.raises(ValueError, match=f"max_turn_chars must be at least {MIN_TURN_CHARS}"):
        config(max_turn_chars=MIN_TURN_CHARS - 1)


def test_engine_failure_ends_the_trajectory_with_its_reason(executor):
    engine = ScriptedEngine.by_question({"Q6": ["```python\nprint(3)\n```"]})  # no second turn scripted
    trajectory = run_trajectory("Q6", config(), engine, executor.session, "q6")
    assert trajectory.end_reason == "error"
    assert "has no turn 1" in trajectory.error


@pytest.mark.parametrize(
    ("text", "blocks"),
    [
        ("a\n```python\nprint(1)\n```\nb\n```python\nprint(2)\n```\n", ["print(1)\n", "print(2)\n"]),
        ("```python\nx = 1\n", ["x = 1\n"]),  # unclosed: the model stopped at ```output
        ("```python\n\n```", ["\n"]),  # empty blocks run in the reference too
        ("```python\nx = 1\n```output\n1\n```python\ny = 2", ["x = 1\n", "y = 2\n"]),
        ("```py\nprint(1)\n```", []),
        ("text ```python\nprint(1)\n```", []),  # a block opens at a line start, as ToRA's extract_program
        ("no code", []),
    ],
)
def test_extract_code_blocks(text, blocks):
    assert extract_code_blocks(text) == blocks


@pytest.mark.parametrize(
    ("text", "blocks"),
    [
        ("a\n```python\nprint(1)\n```\nb", ["print(1)\n"]),
        ("text ```python\nprint(1)\n```", ["print(1)\n"]),  # a fence anywhere in a line opens a block
        ("  ```python\nx\n  ```\n```", ["x\n  ```\n"]),  # only a line starting with ``` closes it
        ("```python\nx = 1", []),  # an unclosed block is dropped
        ("```python\nx\n```\n```output\n1\n```", ["x\n", "", ""]),  # every ``` line adds an entry
        ("```python\na\n```python\nb\n```", ["b\n"]),  # a second fence starts the block afresh
        ("```python\n```", [""]),
        ("no code", []),
    ],
)
def test_reference_blocks(text, blocks):
    assert reference_blocks(text) == blocks


class RecordingSession:
    """Loop logic only: what the loop asks a reference-mode session to replay (the sandbox's side of it is
    tests/test_executor_replay.py and tests/test_reference_observations.py)."""

    def __init__(self):
        self.replays = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def run(self, code):
        raise AssertionError("a reference-mode loop never runs a block live")

    def replay(self, blocks):
        from tir_harness.sandbox.executor import Observation

        self.replays.append(list(blocks))
        return Observation("ok", f"obs{len(self.replays)}", 0.01)


def test_reference_mode_replays_the_whole_conversations_blocks():
    turns = ["Mid-line ```python\nx = 1\n```", "```python\nprint(x)", "```python\nprint(2)\n```", "\\boxed{2}"]
    engine = ScriptedEngine.by_question({"QR": turns})
    session = RecordingSession()
    cfg = LoopConfig(GEMMA, PROMPT_TYPES["tora"], SamplingConfig(max_tokens=200, stop=GEMMA.stop), 6,
                     execution_mode="reference")  # fmt: skip
    trajectory = run_trajectory("QR", cfg, engine, lambda: session, "qr")
    # Turn 2's block is unclosed: dropped, so the last entry is the empty one the observation's closing fence
    # adds; turn 3 sees turn 2's block closed by the ```output line of the observation that followed it.
    assert session.replays == [
        ["x = 1\n"],
        ["x = 1\n", "", ""],
        ["x = 1\n", "", "", "print(x)<end_of_turn>\n<start_of_turn>user\n", "", "print(2)\n"],
    ]
    assert [t.observation for t in trajectory.turns] == ["obs1", "obs2", "obs3", None]
    assert trajectory.turns[2].code_blocks == session.replays[2]
    with pytest.raises(ValueError, match="execution_mode must be one of live, reference"):
        LoopConfig(GEMMA, PROMPT_TYPES["tora"], SamplingConfig(), execution_mode="replay")


def test_sample_seeds_of_different_runs_never_collide():
    seeds = {(s, i): sample_seed(s, i) for s in range(-3, 40) for i in range(64)}
    assert len(set(seeds.values())) == len(seeds)
    assert sample_seed(1, 0) != sample_seed(0, 1)
    with pytest.raises(ValueError, match="sample index"):
        sample_seed(0, 2**20)
    with pytest.raises(ValueError, match="--seed"):
        sample_seed(2**43, 0)


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
    driver = Driver(engine, executor.session, workers=4)
    try:
        long = driver.start("LONG", config(), "long")
        short = driver.start("SHORT", config(), "short")
        short_result = short.result(timeout=30)
        short_done.set()
        long_result = long.result(timeout=60)
    finally:
        driver.close(timeout=60)
    assert short_result.end_reason == "answer" and len(short_result.turns) == 1
    assert long_result.end_reason == "answer" and len(long_result.turns) == 4
