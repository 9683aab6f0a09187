"""What one run of the TIR loop produced: turns, the final response, and how it ended.

A `Trajectory` gives the trajectory part of one JSONL record (`to_dict`), the unit that reports, the result
store, baselines and training-data export all read; the record's fields are defined in `fields`.  Records
hold plain builtins only (xdist and JSON need that).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1

# Why a trajectory stopped.
END_ANSWER = "answer"  # a \boxed{} answer was written
END_NO_CODE = "no_code"  # the model stopped without a box and without code
END_MAX_TOOL_CALLS = "max_tool_calls"
END_LENGTH = "length"  # max_tokens or the context length was hit
END_ERROR = "error"  # the engine failed for this request
END_REASONS = (END_ANSWER, END_NO_CODE, END_MAX_TOOL_CALLS, END_LENGTH, END_ERROR)

# Appended (by the reference, after the last allowed execution's observation) to close the conversation.
MAX_CALLS_NOTE = "\nReach max function call limit."


@dataclass
class Turn:
    text: str  # what the model generated in this turn (without the stop string)
    finish_reason: str
    stop_reason: str | int | None = None
    code: str | None = None  # every ```python block that ran, in order, joined by newlines
    observation: str | None = None  # what was appended for the model to read
    exec_status: str | None = None  # the executor's status for `code`
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None
    thinking_tokens: int | None = None  # of completion_tokens, the thinking ones (None: no think block, or unknown)
    gen_seconds: float = 0.0
    exec_seconds: float = 0.0  # all blocks of the turn
    code_blocks: list[str] | None = None  # the blocks of `code`, one per execution; the observation is the last's
    text_cut: bool = False  # the completion was longer than --max-turn-chars: `text` is its head and tail
    original_chars: int | None = None  # the completion's length before the cut (None: not cut)


@dataclass
class Trajectory:
    prompt: str  # the first prompt, exactly as sent
    turns: list[Turn] = field(default_factory=list)
    end_reason: str = ""
    error: str | None = None
    seconds: float = 0.0
    final_prompt: str = ""  # the last prompt sent: the whole conversation so far

    @property
    def response(self) -> str:
        """Everything the model wrote, observations included, as one text to extract the answer from."""
        parts: list[str] = []
        for turn in self.turns:
            parts.append(turn.text)
            if turn.observation is not None:
                parts.append(f"\n```output\n{turn.observation}\n```\n")
        return "".join(parts)

    @property
    def conversation(self) -> str:
        """The whole conversation as the reference writes it: `conversation_text` of this trajectory."""
        return conversation_text(self.to_dict())

    @property
    def tool_calls(self) -> int:
        return sum(1 for t in self.turns if t.code is not None)

    @property
    def prompt_tokens(self) -> int:
        return sum(t.prompt_tokens for t in self.turns)

    @property
    def completion_tokens(self) -> int:
        return sum(t.completion_tokens for t in self.turns)

    @property
    def thinking_tokens(self) -> int | None:
        """Tokens spent thinking over all turns; None when no turn had a think block the engine counted."""
        counted = [t.thinking_tokens for t in self.turns if t.thinking_tokens is not None]
        return sum(counted) if counted else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for turn in data["turns"]:  # absent rather than null: records of models that do not think stay as they were
            if turn["thinking_tokens"] is None:
                del turn["thinking_tokens"]
        data.update(
            response=self.response,
            tool_calls=self.tool_calls,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
        )
        thinking = self.thinking_tokens
        if thinking is not None:
            data.update(thinking_tokens=thinking, answer_tokens=max(0, self.completion_tokens - thinking))
        return data


def conversation_text(record: dict[str, Any]) -> str:
    """The conversation the reference would have written for a record: the last prompt sent, then the last
    turn's right-stripped text, or (when the tool-call limit ended it) the limit note."""
    text = str(record.get("final_prompt") or record.get("prompt") or "")
    turns = record.get("turns") or []
    if not turns:
        return text
    last = turns[-1]
    if last.get("code") is None:
        return text + str(last.get("text") or "").rstrip()
    return text + MAX_CALLS_NOTE if record.get("end_reason") == END_MAX_TOOL_CALLS else text
