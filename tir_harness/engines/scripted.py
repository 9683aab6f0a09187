"""A scripted engine that replays fixed responses: for testing the loop, the scheduler and the plugin.

It honours stop strings the way a real engine does (the text is cut before the earliest stop string, which
is reported as `stop_reason`), so the loop sees exactly what vLLM would hand it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from tir_harness.engines.base import Completion, EngineError, GenerationRequest
from tir_harness.util.text import THINK_CLOSE, THINK_OPEN

Responder = Callable[[GenerationRequest], str]


class ScriptedEngine:
    def __init__(self, responder: Responder, *, threaded: bool = True) -> None:
        self.responder = responder
        self.threaded = threaded  # answer from a thread of its own, like a real engine, so responders may block
        self.requests: list[GenerationRequest] = []
        self._lock = threading.Lock()

    @classmethod
    def by_question(cls, turns: dict[str, list[str]], **kwargs: Any) -> ScriptedEngine:
        """Each question (a substring of the prompt) gets its list of turns, one per request in order."""

        def respond(request: GenerationRequest) -> str:
            for key, texts in turns.items():
                if key in request.prompt:
                    # Turn n of a trajectory is the n-th request that carries the same question.
                    turn = int(request.request_id.rsplit("#t", 1)[1]) if "#t" in request.request_id else 0
                    if turn >= len(texts):
                        raise EngineError(f"script for {key!r} has no turn {turn}")
                    return texts[turn]
            raise EngineError("no scripted response for this prompt")

        return cls(respond, **kwargs)

    def capacity(self) -> int | None:
        return None

    def submit(self, request: GenerationRequest) -> Future[Completion]:
        with self._lock:
            self.requests.append(request)
        future: Future[Completion] = Future()
        if self.threaded:
            threading.Thread(target=self._answer, args=(request, future), daemon=True).start()
        else:
            self._answer(request, future)
        return future

    def _answer(self, request: GenerationRequest, future: Future[Completion]) -> None:
        try:
            text = self.responder(request)
        except EngineError as exc:
            future.set_exception(exc)
            return
        stop_reason = None
        cut = len(text)
        for stop in request.sampling.stop:
            at = text.find(stop)
            if 0 <= at < cut:
                cut, stop_reason = at, stop
        words = len(text[:cut].split())
        finish = "stop"
        if words > request.sampling.max_tokens:
            cut, finish, stop_reason = (
                len(" ".join(text.split()[: request.sampling.max_tokens])),
                "length",
                None,
            )
        future.set_result(
            Completion(
                text=text[:cut],
                thinking_tokens=_thinking_words(text[:cut]),
                finish_reason=finish,
                stop_reason=stop_reason,
                prompt_tokens=len(request.prompt.split()),
                completion_tokens=min(words, request.sampling.max_tokens),
            )
        )

    def info(self) -> dict[str, Any]:
        return {"kind": "scripted"}

    def close(self) -> None:
        pass


def _thinking_words(text: str) -> int | None:
    """The thinking part's size in this engine's tokens (words), by the rule of the real engines' counts."""
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        return len(text[: close + len(THINK_CLOSE)].split())
    return len(text.split()) if THINK_OPEN in text else None
