"""Reading JSONL files with errors that name the file and the line, the same way everywhere."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class JsonlError(ValueError):
    """A line is not a JSON object; the message is one line, `FILE:LINE: what is wrong`."""


def read_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a JSONL file.

    A last line cut short (no newline, not JSON) is what a run killed while writing leaves behind: it is
    skipped with a warning on stderr rather than failing the whole file; the result store has that record.
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
                if line.endswith("\n") or _is_json(line):
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
    return value


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
