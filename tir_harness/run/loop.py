"""The tool-integrated reasoning loop for one trajectory, as the reference implementation runs it.

Generate until a stop string; a `\\boxed{}` ends the trajectory; otherwise a ```python block is run and its
output appended in the prompt format, up to `max_tool_calls` calls (the last observation tells the model the
limit was reached, and it gets one more turn to answer).  Everything that happened is recorded in turns.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tir_harness.engines.base import Engine, EngineError, GenerationRequest, SamplingConfig
from tir_harness.grading.boxed import last_boxed
from tir_harness.records.trajectory import (
    END_ANSWER,
    END_ERROR,
    END_LENGTH,
    END_MAX_TOOL_CALLS,
    END_NO_CODE,
    Trajectory,
    Turn,
)
from tir_harness.run.prompts import Message, PromptFormat, PromptType, first_messages

# Part of the result-store key: bump whenever the loop's behaviour changes what a trajectory would be.
LOOP_VERSION = 1


class CodeSession(Protocol):
    def run(self, code: str) -> Any: ...  # an Observation with .status, .text, .elapsed


SessionFactory = Callable[[], contextlib.AbstractContextManager[CodeSession]]


@dataclass(frozen=True)
class LoopConfig:
    prompt_format: PromptFormat
    prompt_type: PromptType
    sampling: SamplingConfig
    max_tool_calls: int = 4


_PYTHON_BLOCK = re.compile(r"```python\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(text: str) -> str | None:
    """The last ```python block of a turn; an unclosed block counts (the model stopped at ```output)."""
    blocks = _PYTHON_BLOCK.findall(text)
    if not blocks or not blocks[-1].strip():
        return None
    return blocks[-1]


def run_trajectory(
    question: str,
    config: LoopConfig,
    engine: Engine,
    new_session: SessionFactory,
    request_id: str = "",
) -> Trajectory:
    fmt, sampling = config.prompt_format, config.sampling
    messages = first_messages(question, config.prompt_type)
    prompt = fmt.render(messages)
    trajectory = Trajectory(prompt=prompt, final_prompt=prompt)
    started = time.perf_counter()
    calls, previous_id = 0, None
    with contextlib.ExitStack() as stack:
        session: CodeSession | None = None  # started at the first code block: most turns never need one
        while True:
            turn_id = f"{request_id}#t{len(trajectory.turns)}"
            request = GenerationRequest(prompt, sampling, turn_id, fmt.add_special_tokens, previous_id)
            sent = time.perf_counter()
            try:
                completion = engine.submit(request).result()
            except EngineError as exc:
                trajectory.end_reason, trajectory.error = END_ERROR, str(exc)
                break
            turn = Turn(
                text=completion.text,
                finish_reason=completion.finish_reason,
                stop_reason=completion.stop_reason,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                cached_tokens=completion.cached_tokens,
                gen_seconds=round(time.perf_counter() - sent, 4),
            )
            trajectory.turns.append(turn)
            messages = _add_model_text(messages, completion.text)
            code = extract_code(completion.text) if config.prompt_type.uses_tool else None
            if last_boxed(completion.text) is not None:
                trajectory.end_reason = END_ANSWER
            elif completion.finish_reason == "length":
                trajectory.end_reason = END_LENGTH
            elif code is None:
                trajectory.end_reason = END_NO_CODE
            elif calls >= config.max_tool_calls:
                trajectory.end_reason = END_MAX_TOOL_CALLS
            if trajectory.end_reason:
                break
            if session is None:
                session = stack.enter_context(new_session())
            observation = session.run(code)
            calls += 1
            turn.code, turn.observation = code, observation.text
            turn.exec_status, turn.exec_seconds = observation.status, round(observation.elapsed, 4)
            messages = fmt.with_observation(messages, observation.text, last=calls == config.max_tool_calls)
            prompt = fmt.render(messages)
            trajectory.final_prompt = prompt
            previous_id = turn_id
    trajectory.seconds = round(time.perf_counter() - started, 4)
    return trajectory


def _add_model_text(messages: list[Message], text: str) -> list[Message]:
    if messages[-1].role == "assistant":  # inline formats: the model continues its own message
        return [*messages[:-1], Message("assistant", messages[-1].content + text)]
    return [*messages, Message("assistant", text)]
