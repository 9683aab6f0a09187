"""Qwen2.5-Math's executor: what its evaluation code's observations read (docs/fidelity.md, "Qwen2.5-Math").

Its `PythonExecutor` (evaluation/python_executor.py, `get_answer_from_stdout=True`, `auto_mode=True`) and
math_eval.py's `res if res else report` give, for one code block:

1. a timeout: `Timeout Error`;
2. an exception: the traceback's last line (`ZeroDivisionError: division by zero`), what was printed before it
   dropped;
3. a last line holding `print(`: what the program printed; else the value of its last line (`str()` of it),
   what earlier lines printed dropped;
4. nothing: `Done`;

stripped, and cut to 400 characters as upstream's `truncate` does (the first 200, `...`, the last 200).  Run in
the live session, the value of the last line is its repr (upstream: `str`), and stderr is part of the output
(upstream drops it); both are listed in docs/fidelity.md.
"""

from __future__ import annotations

from tir_harness.sandbox.execution import STOPPED, Execution

TIMEOUT = "Timeout Error"
EMPTY = "Done"
OUTPUT_CHARS = 400  # upstream's `truncate(s, max_length=400)`


def truncate(text: str, limit: int = OUTPUT_CHARS) -> str:
    """Upstream's cut: a text longer than `limit` keeps its first and last `limit // 2` characters around `...`."""
    half = limit // 2
    return text[:half] + "..." + text[-half:] if len(text) > limit else text


def render(execution: Execution, limit: int) -> str:
    """Qwen2.5-Math's observation of one live execution (`limit` is at least OUTPUT_CHARS: the head and tail the
    cut keeps must be whole)."""
    error = execution.error
    if execution.status == "timeout":
        return TIMEOUT
    if error is not None and (execution.status in ("error", "memory") or error.when == STOPPED):
        return truncate((error.last_line or f"{error.type}: {error.message}").strip()) or EMPTY
    shown = execution.display if execution.display.total else execution.output
    whole = shown.whole
    text = whole if whole is not None else shown.head + shown.tail  # the head and tail hold what the cut keeps
    return truncate(text.strip()) or EMPTY
