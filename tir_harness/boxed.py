"""Find the last ``\\boxed{...}`` in LaTeX text.

Shared by the problem loaders (gold answers in MATH solutions) and the grader (model responses): both must
agree on what "the boxed answer" is.
"""

from __future__ import annotations

import re

_BOX = re.compile(r"\\(?:boxed|fbox)\b")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` or ``\\fbox{...}`` (braces balanced), or of ``\\boxed 5``.

    Returns None when there is no box or the last box is unterminated; an empty ``\\boxed{}`` gives "".
    """
    for match in reversed(list(_BOX.finditer(text))):
        content = _box_content(text, match.end())
        if content is not None:
            return content
    return None


def _box_content(text: str, pos: int) -> str | None:
    if pos < len(text) and text[pos] == "{":
        depth = 0
        for i in range(pos, len(text)):
            ch = text[i]
            if ch == "\\":
                continue
            if ch == "{" and text[i - 1] != "\\":
                depth += 1
            elif ch == "}" and text[i - 1] != "\\":
                depth -= 1
                if depth == 0:
                    return text[pos + 1 : i]
        return None
    # `\boxed 5`: the unbraced form takes the following token, up to whitespace or `$`.
    match = re.match(r"[ \t]+([^\s$]+)", text[pos:])
    if match is None:
        return None
    return match.group(1).rstrip(".")
