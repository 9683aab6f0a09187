"""Hostile text made safe at the boundary: what the engine and the sandbox produce, sanitised once.

`SafeEngine` and `safe_sessions` wrap the engine and the sandbox where the run hands them to the loop: every
text they produce is sanitised there (lone surrogates, NUL), so no writer downstream (JSON, UTF-8 files,
SQLite) can choke on what a server or a snippet produced.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

from tir_harness.engines.base import Completion, EngineError, GenerationRequest
from tir_harness.util.text import exception_line, sanitize


class SafeEngine:
    """The engine as the loop sees it: completions with sanitised text, every failure an `EngineError`."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def submit(self, request: GenerationRequest) -> Future[Completion]:
        outer: Future[Completion] = Future()
        outer.set_running_or_notify_cancel()
        try:
            inner = self._engine.submit(request)
        except Exception as exc:  # an engine that raises instead of failing the future
            outer.set_exception(_engine_error(exc))
            return outer

        def copy(done: Future[Completion]) -> None:
            if done.cancelled():
                outer.set_exception(EngineError("the request was cancelled"))
                return
            exc = done.exception()
            if exc is not None:
                outer.set_exception(_engine_error(exc))
                return
            completion = done.result()
            if not isinstance(getattr(completion, "text", None), str):
                outer.set_exception(EngineError(f"unreadable completion: text is {type(completion.text).__name__}"))
                return
            outer.set_result(dataclasses.replace(completion, text=sanitize(completion.text)))

        inner.add_done_callback(copy)
        return outer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def _engine_error(exc: BaseException) -> EngineError:
    if isinstance(exc, EngineError):
        return EngineError(sanitize(str(exc)))
    return EngineError(sanitize(exception_line(exc)))


class _SafeSession:
    def __init__(self, session: Any) -> None:
        self._session = session

    def run(self, code: str) -> Any:
        observation = self._session.run(code)
        return dataclasses.replace(observation, text=sanitize(observation.text))

    def replay(self, blocks: Sequence[str]) -> Any:
        observation = self._session.replay(blocks)
        return dataclasses.replace(observation, text=sanitize(observation.text))


def safe_sessions(factory: Callable[[], Any]) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """The sandbox's session factory, with every observation's text sanitised."""

    @contextlib.contextmanager
    def session() -> Iterator[_SafeSession]:
        with factory() as inner:
            yield _SafeSession(inner)

    return session
