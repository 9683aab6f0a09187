"""The reference implementation's executor: what its observations read, rule for rule (docs/fidelity.md).

The reference (a fork of ToRA) runs, at every turn, every ```python block of the conversation so far in a
fresh IPython `InteractiveShell`, one `run_cell` per block, inside one generated Python program in which each
block is pasted into a `\"\"\"` string literal.  The worker reproduces how the code runs (`worker.py`,
`Cells.replay`): the literal's escapes, the refusal of `input(` and `os.system(`, warnings off, IPython's display
and tracebacks, one fresh shell per replay.  This module reproduces how the reference turns what the last
block produced into text:

1. any block containing `input(` or `os.system(` (anywhere, even in a name): `RuntimeError`; a block whose
   escapes break the string literal: that `SyntaxError`'s line (both decided before any block runs, so they
   hold for every later turn too); no block at all: `Undefined error:`;
2. the last block's stdout, then its stderr, stripped, then every `Out[1]: ` removed (a multi-line display
   keeps the newline IPython puts after the prompt);
3. an error in the last block: the last paragraph (split at blank lines) of that text after its first
   `Traceback`, with terminal colour codes removed; or, if the block printed nothing at all,
   `Execution error: <message>` / `Syntax error: <message>`;
4. nothing printed and no error: `Result is not defined`;
5. `Timeout Error` when the replay took longer than its time (20 s for all blocks together), and also when
   that text occurs anywhere in what the code printed or in its error's message (the reference tests its
   reply's JSON text for it);
6. nothing is cut (the reference's cut is commented out): `OUTPUT_CHARS` is only a safety cap far above
   anything a model prints; beyond it the text is cut with the harness's marker.
"""

from __future__ import annotations

import re

from tir_harness.sandbox.execution import COMPILE, IPYTHON, RUN, SETUP, STOPPED, Execution, abort_line, join

EMPTY = "Result is not defined"
TIMEOUT = "Timeout Error"
UNDEFINED = "Undefined error:"
OUT_PROMPT = "Out[1]: "  # the shell's output prompt: its execution count stays 1 (cells are not stored)
OUTPUT_CHARS = 100_000  # the safety cap of the `reference` style (the reference cuts nothing)
REPLAY_SECONDS = 20.0  # the reference's pool timeout, for the whole replay of every block
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def last_paragraph(text: str) -> str:
    """What the reference keeps of an error's output: after the first `Traceback`, colour codes removed, the
    last blank-line-separated paragraph."""
    text = _ANSI.sub("", text)
    at = text.find("Traceback")
    if at >= 0:
        text = text[at:]
    return text.split("\n\n")[-1]


def render(execution: Execution, limit: int) -> str:
    """The reference's observation for an execution (a replay; for a live call, the same rules applied to
    what the live session shows: its display is the final expression's repr, its error the traceback's
    last line)."""
    error = execution.error
    if execution.status == "timeout":
        return TIMEOUT
    if error is not None and error.when == STOPPED:
        return f"{error.type}: {error.message}"  # the reference's run would have ended here (docs/fidelity.md)
    if execution.shell != IPYTHON:
        return _render_live(execution, limit)
    if error is not None and error.when == SETUP:
        result, message = "", error.last_line
    elif execution.cells == 0:
        result, message = "", UNDEFINED
    else:
        result = execution.output.cut(limit).strip().replace(OUT_PROMPT, "")
        result = join([result, abort_line(execution)]) if execution.output_abort else result
        if error is not None and error.when == RUN:
            message = f"Execution error: {error.message}"
        elif error is not None and error.when == COMPILE:
            message = f"Syntax error: {error.message}"
        else:
            message = "" if result else EMPTY
    # The reply's JSON text is cleaned of the prompt once more, and tested for the timeout's words.
    result, message = result.replace(OUT_PROMPT, ""), message.replace(OUT_PROMPT, "")
    if TIMEOUT in result or TIMEOUT in message:
        return TIMEOUT
    if message:
        return last_paragraph(result) if result else message
    return result


def _render_live(execution: Execution, limit: int) -> str:
    if execution.status in ("error", "memory") and execution.error is not None:
        return execution.error.last_line.strip() or EMPTY
    shown = [p.cut(limit) for p in (execution.output, execution.display) if p.total]
    return join(shown + ([abort_line(execution)] if execution.output_abort else [])).strip() or EMPTY
