"""Reading JSONL files with errors that name the file and the line, the same way everywhere."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tir_harness.util.text import sanitize


class JsonlError(ValueError):
    """A line is not a JSON object; the message is one line, `FILE:LINE: what is wrong`."""


def read_objects(path: Path, *, strict: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a JSONL file.

    Two kinds of file, two rules for a last line cut short (no newline, not JSON):
    - a run's own output (`strict=False`, trajectories.jsonl): that is what a run killed while writing leaves
      behind, so it is skipped with a warning on stderr; the result store has that record;
    - an input someone wrote (`strict=True`, a problem file): nothing explains a cut-short line but a broken
      copy, and skipping it would silently drop a problem, so it is an error like any other bad line.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            pending: tuple[int, str] | None = None
            for lineno, line in enumerate(handle, 1):
                if pending is not None:
                    yield pending[0], _parse(path, *pending)
                    pending = None
                if line.strip():
                    pending = (lineno, line)
            if pending is not None:
                lineno, line = pending
                if strict or line.endswith("\n") or _is_json(line):
                    yield lineno, _parse(path, lineno, line)
                else:
                    print(f"{path}:{lineno}: skipped an incomplete last line (interrupted run?)", file=sys.stderr)
    except UnicodeDecodeError as exc:
        raise JsonlError(f"{path}: not UTF-8 text ({exc.reason})") from None


def _parse(path: Path, lineno: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise JsonlError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise JsonlError(f"{path}:{lineno}: expected a JSON object, got {type(value).__name__}")
    # Only a \u escape can put a lone surrogate or a NUL into a decoded string: such text would break every
    # UTF-8 and SQLite writer downstream, so it is made safe here, where it comes in.
    return _sanitized(value) if "\\u" in line else value


def _sanitized(value: Any) -> Any:
    if isinstance(value, str):
        return sanitize(value)
    if isinstance(value, dict):
        return {sanitize(k): _sanitized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sanitized(v) for v in value]
    return value


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
