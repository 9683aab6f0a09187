"""The tool-integrated reasoning loop for one trajectory, as the reference implementation runs it.

Generate until a stop string.  A turn whose text contains `boxed` ends the trajectory (the reference's test,
a substring, not a parsed box); so does a turn without a ```python block, and every turn of a prompt type
without the tool.  Otherwise the code runs, in one of two execution modes (the observation style's, see
sandbox/observations.py):

- `live` (the harness's styles): every ```python block of the turn (a line starting with ```python opens one)
  runs, in order, in the trajectory's live session;
- `reference` (the reference's executor, reproduced observation for observation): every block of the whole
  conversation so far, parsed with the reference's fence rule (`reference_blocks`), is replayed in a fresh
  interpreter by `session.replay`; a turn with ```python anywhere runs, even when that rule finds no block.

What the last block produced is appended in the prompt format.  At most `max_tool_calls` turns run code (the
reference's horizon): after the last allowed one the limit note is appended to the conversation and the
trajectory ends without another generation.  Everything that happened is recorded in turns.

A completion longer than `max_turn_chars` is cut as the sandbox cuts its output (head and tail around a
visible marker) before anything reads it, and the turn records the cut: what one turn brings into the
conversation, the report and the store stays bounded, whatever a server sends.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

from tir_harness.engines.base import Engine, EngineError, GenerationRequest, SamplingConfig
from tir_harness.records.trajectory import (
    END_ANSWER,
    END_ERROR,
    END_LENGTH,
    END_MAX_TOOL_CALLS,
    END_NO_CODE,
    Trajectory,
    Turn,
)
from tir_harness.run.prompts import PromptFormat, PromptType, first_messages
from tir_harness.sandbox.observations import MODES, get_style
from tir_harness.sandbox.observations import render as cut_text
from tir_harness.sandbox.reference import OUTPUT_CHARS
from tir_harness.util.text import displayable

# Part of the result-store key: bump whenever the loop's behaviour changes what a trajectory would be.
LOOP_VERSION = 3  # 3: the reference style replays every block of the conversation (execution_mode "reference")


class CodeSession(Protocol):
    def run(self, code: str) -> Any: ...  # an Observation with .status, .text, .elapsed
    def replay(self, blocks: list[str]) -> Any: ...  # the same, for every block of a conversation (reference mode)


SessionFactory = Callable[[], contextlib.AbstractContextManager[CodeSession]]


# Sample i of a run with seed s samples with seed s * 2**20 + i: injective over (s, i) while i < 2**20, so two runs
# with different seeds never share a sample's seed, and |s| < 2**43 keeps it inside a signed 64-bit integer.
SAMPLE_BITS = 20
# Observation cap with the `reference` style: the reference cuts nothing; this keeps a runaway print bounded (the
# style declares it: sandbox/reference.py).
REFERENCE_OUTPUT_CHARS = OUTPUT_CHARS
MAX_RUN_SEED = 2**43
# Characters of one model turn kept (--max-turn-chars): about 1 MB of text, far beyond any real turn (a 4,096-token
# turn is some 20,000 characters).  Below the minimum, head and tail around the marker would say nothing.
MAX_TURN_CHARS = 1_000_000
MIN_TURN_CHARS = 100


def execution_mode(observation_style: str) -> str:
    """The execution mode (`LoopConfig.execution_mode`) an observation style needs: "live" or "reference"."""
    return get_style(observation_style).mode


def sample_seed(seed: int, sample: int) -> int:
    """The sampling seed of sample `sample` of a run with seed `seed` (distinct for every distinct pair)."""
    if not 0 <= sample < 2**SAMPLE_BITS:
        raise ValueError(f"sample index must be in 0..{2**SAMPLE_BITS - 1}, got {sample}")
    if not -MAX_RUN_SEED < seed < MAX_RUN_SEED:
        raise ValueError(f"--seed must be between -2**43 and 2**43 (exclusive), got {seed}")
    return seed * 2**SAMPLE_BITS + sample


@dataclass(frozen=True)
class LoopConfig:
    prompt_format: PromptFormat
    prompt_type: PromptType
    sampling: SamplingConfig
    max_tool_calls: int = 4
    max_turn_chars: int = MAX_TURN_CHARS
    execution_mode: str = "live"  # the observation style's mode (observations.get_style(name).mode)
    # --reference-quirks: the model's input as the reference built it (docs/fidelity.md, "Quirks"): the tokenizer
    # adds a BOS before the one the text carries, and the server drops special tokens from the output.
    reference_quirks: bool = False

    def __post_init__(self) -> None:
        if self.max_turn_chars < MIN_TURN_CHARS:
            raise ValueError(f"max_turn_chars must be at least {MIN_TURN_CHARS}, got {self.max_turn_chars}")
        if self.execution_mode not in MODES:
            raise ValueError(f"execution_mode must be one of {', '.join(MODES)}, got {self.execution_mode!r}")


def extract_code_blocks(text: str) -> list[str]:
    """Every ```python block of a turn, in order, split as the reference (ToRA's `extract_program`) splits:
    a block opens at a line starting with ```python and closes at the next line starting with ```; an unclosed
    block counts (the model stopped at ```output).  Empty blocks are kept: the reference runs them too."""
    blocks: list[str] = []
    lines: list[str] | None = None
    for line in text.rstrip().split("\n"):  # the reference reads the right-stripped text
        if line.startswith("```python"):
            lines = []
            blocks.append("")
        elif line.startswith("```"):
            lines = None
        elif lines is not None:
            blocks[-1] += line + "\n"
    return blocks


def reference_blocks(conversation: str) -> list[str]:
    """The code blocks of a whole conversation as the reference's executor reads them (ToRA's `extract_program`
    as the reference changed it): a line containing ```python anywhere (indented, mid-line) opens a block,
    afresh if one is open; every line starting with ``` adds an entry, the open block's lines or an empty one
    (an ```output line, the closing fence of an observation), and closes the block; an unclosed block is
    dropped.  So the last entry, the one observed, may be empty."""
    blocks: list[str] = []
    lines: list[str] | None = None
    for line in conversation.split("\n"):
        if "```python" in line:
            lines = []
        elif line.startswith("```"):
            blocks.append("".join(lines or []))
            lines = None
        elif lines is not None:
            lines.append(line + "\n")
    return blocks


def wants_code(text: str) -> bool:
    """The reference's rule: code runs when the turn has no `boxed` and contains a ```python block."""
    return "boxed" not in text and "```python" in text


@dataclass(frozen=True)
class Generate:
    """A step of a trajectory: generate this request; send back its Completion, or the EngineError it raised."""

    request: GenerationRequest


@dataclass(frozen=True)
class Execute:
    """A step of a trajectory: run these blocks in its session (`replay`: all of them in a fresh interpreter,
    else one after another in the live session); send back the Observation of the last."""

    blocks: list[str]
    replay: bool


Step = Generate | Execute


def trajectory_steps(question: str, config: LoopConfig, request_id: str = "") -> Generator[Step, Any, Trajectory]:
    """The loop of one trajectory, as a generator: it yields what to do next (`Generate`, `Execute`), is sent
    what came of it, and returns the Trajectory.  Whoever drives it owns the waiting and the session:
    `run_trajectory` in one thread, `run/driver.py` for many trajectories without a thread each."""
    fmt, sampling = config.prompt_format, config.sampling
    replays = config.execution_mode == "reference"
    messages = first_messages(question, config.prompt_type, fmt.name)
    prompt = fmt.render(messages)
    trajectory = Trajectory(prompt=prompt, final_prompt=prompt)
    started = time.perf_counter()
    calls, previous_id = 0, None
    while True:
        turn_id = f"{request_id}#t{len(trajectory.turns)}"
        request = GenerationRequest(
            prompt,
            sampling,
            turn_id,
            fmt.add_special_tokens or config.reference_quirks,
            previous_id,
            skip_special_tokens=config.reference_quirks,
        )
        sent = time.perf_counter()
        completion = yield Generate(request)
        if isinstance(completion, EngineError):
            # Shown on the test's failure line: a server's words must not act on the terminal.
            trajectory.end_reason, trajectory.error = END_ERROR, displayable(str(completion))
            break
        text = completion.text
        original = len(text)
        if original > config.max_turn_chars:
            text = cut_text([text, "", original], config.max_turn_chars)
        turn = Turn(
            text=text,
            text_cut=original > config.max_turn_chars,
            original_chars=original if original > config.max_turn_chars else None,
            finish_reason=completion.finish_reason,
            stop_reason=completion.stop_reason,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            cached_tokens=completion.cached_tokens,
            thinking_tokens=completion.thinking_tokens,
            gen_seconds=round(time.perf_counter() - sent, 4),
        )
        trajectory.turns.append(turn)
        messages = fmt.with_model_text(messages, text)
        blocks: list[str] = []
        runs = config.prompt_type.uses_tool and wants_code(text)
        if runs and replays:  # the conversation as the reference reads it: the prompt it would continue
            blocks = reference_blocks(fmt.render(messages))
        elif runs:
            blocks = extract_code_blocks(text)
            runs = bool(blocks)
        if "boxed" in text:
            trajectory.end_reason = END_ANSWER
        elif not runs:
            # A turn cut at max_tokens with code still runs it, as in the reference.
            trajectory.end_reason = END_LENGTH if completion.finish_reason == "length" else END_NO_CODE
        elif calls >= config.max_tool_calls:
            trajectory.end_reason = END_MAX_TOOL_CALLS
        if trajectory.end_reason:
            break
        observation, seconds = yield Execute(blocks, replays)
        calls += 1
        turn.code, turn.code_blocks, turn.observation = "\n".join(blocks), blocks, observation.text
        turn.exec_status, turn.exec_seconds = observation.status, round(seconds, 4)
        messages = fmt.with_observation(messages, observation.text)
        prompt = fmt.render(messages)
        trajectory.final_prompt = prompt
        if calls >= config.max_tool_calls:
            # The note closes the conversation (`Trajectory.conversation`); nothing more is generated.
            trajectory.end_reason = END_MAX_TOOL_CALLS
            break
        previous_id = turn_id
    trajectory.seconds = round(time.perf_counter() - started, 4)
    return trajectory


def execute(session: CodeSession, step: Execute) -> tuple[Any, float]:
    """Run an `Execute` step in `session`: the observation of the last block, and the seconds all took."""
    if step.replay:
        observation = session.replay(step.blocks)
        return observation, observation.elapsed
    observation, seconds = None, 0.0
    for block in step.blocks:  # the observation is what the last block produced
        observation = session.run(block)
        seconds += observation.elapsed
    assert observation is not None
    return observation, seconds


def run_trajectory(
    question: str,
    config: LoopConfig,
    engine: Engine,
    new_session: SessionFactory,
    request_id: str = "",
) -> Trajectory:
    """One trajectory in the calling thread, blocking on each generation and code run."""
    steps = trajectory_steps(question, config, request_id)
    with contextlib.ExitStack() as stack:
        session: CodeSession | None = None  # started at the first code block: most turns never need one
        reply: Any = None
        try:
            while True:
                step = steps.send(reply)
                if isinstance(step, Generate):
                    try:
                        reply = engine.submit(step.request).result()
                    except EngineError as exc:
                        reply = exc
                else:
                    if session is None:
                        session = stack.enter_context(new_session())
                    reply = execute(session, step)
        except StopIteration as done:
            return done.value
