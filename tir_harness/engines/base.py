"""The engine interface: submit a prompt, get a future completion.

Every engine (in-process vLLM, OpenAI-compatible servers, the scripted test double) implements `Engine`.
Requests are asynchronous so that one scheduler can keep many trajectories in flight on any engine.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable


class EngineError(RuntimeError):
    """A request or the engine failed; the message is meant for the user, in one line."""


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling parameters for one generation; always explicit, never the model's own defaults."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int | None = 0
    stop: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    sampling: SamplingConfig
    request_id: str = ""
    # Chat prompts carry their own <bos>; plain completion prompts let the tokenizer add it.
    add_special_tokens: bool = False
    # The request whose prompt and output this prompt extends: engines that tokenize may reuse its token ids
    # so that the prefix cache sees exactly the tokens it computed.
    continues: str | None = None
    # The reference's quirk (--reference-quirks): the server's default of dropping special tokens from the text.
    skip_special_tokens: bool = False


@dataclass(frozen=True)
class Completion:
    """One finished generation.

    `text` never contains the stop string that ended it (OpenAI semantics); `stop_reason` names it.
    """

    text: str
    finish_reason: str  # "stop" | "length"
    stop_reason: str | int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None
    # Of completion_tokens, those a reasoning model spent thinking (up to and including `</think>`, or all of
    # them when the think block never closed); None: no think block, or the engine cannot tell.
    thinking_tokens: int | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """What the TIR loop needs from a model."""

    def submit(self, request: GenerationRequest) -> Future[Completion]:
        """Queue one generation; the future fails with EngineError if this request cannot be served."""
        ...

    def info(self) -> dict[str, Any]:
        """Plain-builtin description for the run manifest (model, engine kind, options, versions)."""
        ...

    def capacity(self) -> int | None:
        """How many sequences the engine batches at once (vLLM's max_num_seqs), once started; None: unknown.
        The run keeps a little more than this many trajectories in flight (run/scheduler.py)."""
        ...

    def close(self) -> None: ...
