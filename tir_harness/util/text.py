"""Text for users and text from outside: one-line messages, and sanitising of untrusted text."""

from __future__ import annotations


def one_line(text: object, limit: int = 400) -> str:
    """`text` with its whitespace runs collapsed to single spaces, cut to `limit` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def exception_line(exc: BaseException) -> str:
    """`Type: first line of the message`, the way one-line errors name a failure from a library."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def sanitize(text: str) -> str:
    """Text safe for every JSON, UTF-8 and SQLite writer downstream: lone surrogates become backslash
    escapes and NUL characters are dropped (an engine or a snippet may produce either)."""
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "") if "\x00" in text else text
