"""Find the last ``\\boxed{...}`` in LaTeX text.

Shared by the problem loaders (gold answers in MATH solutions) and the grader (model responses): both must
agree on what "the boxed answer" is.
"""

from __future__ import annotations

import re

BOX = re.compile(r"\\(?:boxed|fbox)\b")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` or ``\\fbox{...}`` (braces balanced), or of ``\\boxed 5``.

    Returns None when there is no box or the last box is unterminated; an empty ``\\boxed{}`` gives "".
    Linear in the text: braces are matched once, not once per box (model output can hold thousands).
    """
    boxes = list(BOX.finditer(text))
    if not boxes:
        return None
    closing = _matching_braces(text)
    for match in reversed(boxes):
        pos = match.end()
        if pos < len(text) and text[pos] == "{":
            end = closing.get(pos)
            if end is not None:
                return text[pos + 1 : end]
            continue
        # `\boxed 5`: the unbraced form takes the following token, up to whitespace or `$`.
        unbraced = re.match(r"[ \t]+([^\s$]+)", text[pos : pos + 200])
        if unbraced is not None:
            return unbraced.group(1).rstrip(".")
    return None


def box_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every braced box whose braces balance, outermost boxes only, in order."""
    closing = _matching_braces(text)
    spans: list[tuple[int, int, str]] = []
    for match in BOX.finditer(text):
        pos = match.end()
        end = closing.get(pos) if pos < len(text) and text[pos] == "{" else None
        if end is not None and not (spans and match.start() < spans[-1][1]):  # a box inside a box is its content
            spans.append((match.start(), end + 1, text[pos + 1 : end]))
    return spans


def _matching_braces(text: str) -> dict[int, int]:
    """Opening brace position -> its closing brace, ignoring escaped ``\\{`` and ``\\}``."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for i, ch in enumerate(text):
        if ch in "{}" and i and text[i - 1] == "\\":
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
    return pairs
