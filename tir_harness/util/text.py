"""Text for users and text from outside: one-line messages, and sanitising of untrusted text."""

from __future__ import annotations

import re

# Characters that act on a terminal or on how text is laid out instead of being shown: the C0 and C1 controls
# but newline and tab (ESC starts terminal sequences, CR and backspace overwrite what was printed, BEL rings)
# and the bidirectional formatting characters (an override reverses what follows it, so shown text can read
# as something else: "Trojan source"; a prediction "\u202e24" shows as 42).
# The tags around a reasoning model's thinking (grading reads the answer after the close, engines count tokens).
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

_ACTING = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")  # \x1b, \r, \u202e: as Python writes them


def displayable(text: str) -> str:
    """`text` made inert for a terminal or a markdown file: every character in `_ACTING` is shown as its escape
    (`\\x1b`, `\\u202e`) instead of acting; newlines, tabs and all other text stay as they are.

    For text shown to people only: records keep the model's and the sandbox's text exactly as it was."""
    return _ACTING.sub(_escape, text)


def one_line(text: object, limit: int = 400) -> str:
    """`text` with its whitespace runs collapsed to single spaces, cut to `limit` characters, made displayable."""
    line = displayable(" ".join(str(text).split()))
    return line if len(line) <= limit else line[: limit - 3] + "..."


def exception_line(exc: BaseException) -> str:
    """`Type: first line of the message`, the way one-line errors name a failure from a library; displayable,
    since a message may quote text from outside (a server's answer, a problem file, the model's output)."""
    lines = str(exc).strip().splitlines()
    return displayable(f"{type(exc).__name__}: {lines[0]}") if lines else type(exc).__name__


def sanitize(text: str) -> str:
    """Text safe for every JSON, UTF-8 and SQLite writer downstream: lone surrogates become backslash
    escapes and NUL characters are dropped (an engine or a snippet may produce either)."""
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "") if "\x00" in text else text
