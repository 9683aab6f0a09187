"""Observation styles come from one registry (sandbox/observations.py): a style written outside the package,
registered by its own module as a third party would, runs end to end through the loop with the real sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tir_harness.engines.base import SamplingConfig
from tir_harness.engines.scripted import ScriptedEngine
from tir_harness.run.loop import LoopConfig, run_trajectory
from tir_harness.run.prompts import FORMATS, PROMPT_TYPES
from tir_harness.sandbox.execution import Execution
from tir_harness.sandbox.executor import Executor, ExecutorConfig
from tir_harness.sandbox.observations import STYLES, ObservationStyle, get_style, register_style

PATIENT = 120.0


# ------------------------------------------------------------------ the whole of a third party's style file


def shout(execution: Execution, limit: int) -> str:
    """Status first, output upper-cased, the final expression after a bar, an error by its type and message."""
    if execution.error is not None:
        return f"[{execution.status}] {execution.error.type} ({execution.error.when}): {execution.error.message}"
    shown = execution.output.cut(limit).strip().upper()
    if execution.display.total:
        shown += " | " + execution.display.cut(limit)
    return f"[{execution.status}] {shown}"


# ------------------------------------------------------------------------------------------------ tests


@pytest.fixture
def shouting() -> Iterator[ObservationStyle]:
    style = register_style("shouting-test", shout)
    try:
        yield style
    finally:
        STYLES.unregister("shouting-test")


def test_a_style_from_outside_the_package_runs_through_the_loop(shouting: ObservationStyle) -> None:
    assert get_style("shouting-test") is shouting and shouting.mode == "live"
    turns = [
        "```python\nx = 6 * 7\nprint('x is', x)\nx\n```",
        "```python\nx / 0\n```",
        "```python\nprint(\n```",
        "So \\boxed{42}.",
    ]
    engine = ScriptedEngine.by_question({"SHOUT": turns})
    fmt = FORMATS["gemma"]
    config = LoopConfig(fmt, PROMPT_TYPES["tora"], SamplingConfig(max_tokens=200, stop=fmt.stop), 4)
    with Executor(timeout=PATIENT, observation_style="shouting-test", warm_workers=1) as ex:
        trajectory = run_trajectory("SHOUT", config, engine, ex.session, "shout")
    assert [t.observation for t in trajectory.turns] == [
        "[ok] X IS 42 | 42",
        "[error] ZeroDivisionError (run): division by zero",
        "[error] SyntaxError (compile): '(' was never closed",
        None,
    ]
    # The prompt format only wraps what the style wrote.
    assert "<start_of_turn>user\n```output\n[ok] X IS 42 | 42\n```<end_of_turn>\n" in engine.requests[1].prompt


def test_an_unknown_style_is_refused_naming_the_known_ones(shouting: ObservationStyle) -> None:
    with pytest.raises(ValueError) as refused:
        ExecutorConfig(observation_style="whisper")
    message = str(refused.value)
    assert message.startswith("ExecutorConfig.observation_style must be one of ") and "\n" not in message
    assert message.endswith(", got 'whisper'")
    named = message.removeprefix("ExecutorConfig.observation_style must be one of ").removesuffix(", got 'whisper'")
    assert {"full", "reference", "shouting-test"} <= set(named.split(", "))


def test_a_style_declares_a_known_mode_and_a_sane_cap() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        ObservationStyle(shout, mode="batch")
    with pytest.raises(ValueError, match="max_output_chars must be >= 20"):
        ObservationStyle(shout, max_output_chars=5)
    with pytest.raises(TypeError, match="render must be callable"):
        ObservationStyle("not callable")  # type: ignore[arg-type]
    assert get_style("reference").mode == "reference" and get_style("full").mode == "live"
