"""Reasoning models' thinking: the text inside `<think>...</think>` is kept, the answer is read after it.

DeepSeek-R1 distills, Qwen3 and the like think first and answer after `</think>`; a box written while thinking
is a guess the model may revise, never its answer.  Some chat templates open the block in the prompt, so a
response may hold a closing tag with no opening one: everything before the last `</think>` is thinking.  A
response that opens a block and never closes it ran out of tokens (or stopped) mid-thought: it has no answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from tir_harness.util.text import THINK_CLOSE, THINK_OPEN

NOT_FINISHED = "no answer (thinking not finished)"


@dataclass(frozen=True)
class Thought:
    thinking: str | None  # None: the response has no think block
    answer: str  # the text the answer is read from ("" when thinking did not finish)
    finished: bool


def split_thinking(response: str) -> Thought:
    """The thinking and the answer part of a response."""
    close = response.rfind(THINK_CLOSE)
    if close >= 0:
        thinking = response[:close]
        start = thinking.find(THINK_OPEN)
        if start >= 0:
            thinking = thinking[start + len(THINK_OPEN) :]
        return Thought(thinking, response[close + len(THINK_CLOSE) :], True)
    start = response.find(THINK_OPEN)
    if start >= 0:
        return Thought(response[start + len(THINK_OPEN) :], "", False)
    return Thought(None, response, True)
