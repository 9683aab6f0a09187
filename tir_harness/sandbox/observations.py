"""What the model sees of a call: the worker's reply rendered in one of the observation styles.

`full` is IPython-like (output, the final expression's repr, the traceback's tail, cut markers);
`reference` reproduces the reference implementation's shell (docs/fidelity.md).  Texts are sanitised
(`util.text.sanitize`: a lone surrogate becomes a 6-character escape) before they are cut, so the cap
holds for what the model sees.
"""

from __future__ import annotations

from tir_harness.util.text import sanitize

STYLES = ("full", "reference")

MARK = "\n[... {} characters cut ...]\n"
NOTE_LOST = "[The Python session was restarted: variables from earlier cells are lost.]"
REFERENCE_EMPTY = "Result is not defined"
REFERENCE_TIMEOUT = "Timeout Error"


def render(piece: list, budget: int, keep_tail: bool = False) -> str:
    """Text of a [head, tail, total] piece (the first and last characters of a text of `total`
    characters, see worker.Capture) in at most `budget` characters plus a cut marker."""
    head, tail, total = piece
    whole = head + tail if total == len(head) + len(tail) else None
    if total <= budget and whole is not None:
        return whole
    end = whole if whole is not None else tail
    if keep_tail:
        return MARK.format(total - budget).lstrip("\n") + end[len(end) - budget :]
    first, last = budget // 2, budget - budget // 2
    return head[:first] + MARK.format(total - first - last) + (end[-last:] if last else "")


def join(texts: list[str]) -> str:
    out = ""
    for text in texts:
        out += text if not out or out.endswith("\n") else "\n" + text
    return out.rstrip("\n")


def _sanitized(piece: list) -> list:
    """A [head, tail, total] piece with its texts sanitised, `total` changed by as much as they were (the
    cut middle, never seen, is counted as it was)."""
    head, tail, total = piece
    clean_head, clean_tail = sanitize(head), sanitize(tail)
    return [clean_head, clean_tail, total + len(clean_head) - len(head) + len(clean_tail) - len(tail)]


def compose(reply: dict, limit: int, style: str, abort: int) -> str:
    reply = dict(
        reply,
        out=_sanitized(reply["out"]),
        display=_sanitized(reply["display"]),
        error=_sanitized(reply["error"]),
        error_line=sanitize(reply["error_line"])[-limit:],
    )
    stopped = reply["status"] == "output_limit" and not reply["completed"]
    tail = [f"OutputLimitError: more than {abort} characters of output; the code was stopped"] if stopped else []
    if style == "reference":
        # The reference's (an IPython shell): the error's last line; else output and the final expression's
        # display, stripped; `Result is not defined` when that is empty.
        if reply["status"] in ("error", "memory"):
            return reply["error_line"].strip() or REFERENCE_EMPTY
        shown = [render(p, limit) for p in (reply["out"], reply["display"]) if p[2]]
        return join(shown + tail).strip() or REFERENCE_EMPTY
    pieces = [reply["out"], reply["display"], reply["error"]]
    sizes = [p[2] for p in pieces]
    budgets = sizes
    if sum(sizes) > limit:
        # The error's tail says what went wrong: it keeps at least half of the budget.
        error = min(sizes[2], max(limit // 2, limit - sizes[0] - sizes[1]))
        rest = limit - error
        display = min(sizes[1], max(rest // 2, rest - sizes[0]))
        budgets = [rest - display, display, error]
    texts = [render(p, b, i == 2) for i, (p, b) in enumerate(zip(pieces, budgets, strict=True)) if p[2]]
    return join(texts + tail)
