"""What happened when code ran: the sandbox's structured result, before any style turns it into text.

An `Execution` is what `Session.run()` and `Session.replay()` learn from a worker (or from its failure);
an observation style (`observations`) renders it for the model.  Texts arrive cut to the executor's cap as a
`Text` (head, tail, and the length of the whole), already sanitised (`util.text.sanitize`), so a style never
sees more than the cap and never a lone surrogate.
"""

from __future__ import annotations

from dataclasses import dataclass

MARK = "\n[... {} characters cut ...]\n"

# Error.when
COMPILE = "compile"  # the cell could not be compiled (IPython's `error_before_exec`)
RUN = "run"  # the cell raised while running (IPython's `error_in_exec`)
STOPPED = "stopped"  # the harness stopped it: wall-clock or CPU time, memory, an output flood, a dead worker
SETUP = "setup"  # the reference's executor refused before running any cell (see reference.py)

# Execution.shell
PYTHON = "python"  # the live session's own cell runner: the final expression's repr in `display`
IPYTHON = "ipython"  # the reference's replay in IPython: its display and tracebacks are part of `output`


@dataclass(frozen=True)
class Text:
    """A text of `total` characters of which only the first (`head`) and last (`tail`) ones were kept."""

    head: str = ""
    tail: str = ""
    total: int = 0

    @classmethod
    def of(cls, text: str) -> Text:
        return cls(text, "", len(text))

    @property
    def whole(self) -> str | None:
        """The whole text, or None if its middle was cut."""
        return self.head + self.tail if self.total == len(self.head) + len(self.tail) else None

    def cut(self, budget: int, keep_tail: bool = False) -> str:
        """The text in at most `budget` characters plus a cut marker: head and tail, or the tail only."""
        whole = self.whole
        if self.total <= budget and whole is not None:
            return whole
        end = whole if whole is not None else self.tail
        if keep_tail:
            return MARK.format(self.total - budget).lstrip("\n") + end[len(end) - budget :]
        first, last = budget // 2, budget - budget // 2
        return self.head[:first] + MARK.format(self.total - first - last) + (end[-last:] if last else "")


@dataclass(frozen=True)
class Error:
    """Why the code did not complete."""

    type: str  # the exception's class name ("ZeroDivisionError"; "TimeoutError" when the harness stopped it)
    message: str  # its message (`str(exc)`), cut to the cap
    when: str  # COMPILE, RUN, STOPPED or SETUP
    traceback: Text = Text()  # live cells: Python's traceback, the snippet's own frames only (IPython: in output)
    last_line: str = ""  # the traceback's last line ("ZeroDivisionError: division by zero")


@dataclass(frozen=True)
class Execution:
    status: str  # executor.STATUSES: ok, error, timeout, memory, output_limit, killed
    output: Text = Text()  # what the code wrote: live, stdout and stderr in the order written; replay, the
    # last cell's stdout then its stderr, IPython's display ("Out[1]: ...") and traceback included
    display: Text = Text()  # live: repr of the final expression, if it is one and not None
    error: Error | None = None
    completed: bool = True  # the code ran to its end (a clean sys.exit() counts)
    output_abort: int = 0  # > 0: the code was stopped after writing more than this many characters
    elapsed: float = 0.0  # seconds the call took (a kill included; a replay_on_restart's re-runs excluded)
    state_lost: bool = False  # variables from earlier calls are not available after this call
    restarted: bool = False  # this call ran in a new worker: the previous one vanished between calls (evicted,
    # or died idle) and no observation said so yet
    restores_state: bool = False  # replay_on_restart: a new worker re-runs the completed cells first
    shell: str = PYTHON  # PYTHON (a live session) or IPYTHON (the reference's replay)
    cells: int = 1  # cells that ran: 1 for a live call; for a replay, every cell of the conversation


def join(texts: list[str]) -> str:
    """Texts one after the other, each on a line of its own; no trailing newline."""
    out = ""
    for text in texts:
        out += text if not out or out.endswith("\n") else "\n" + text
    return out.rstrip("\n")


def abort_line(execution: Execution) -> str:
    """The line that says the harness stopped a flood of output ("" if it did not)."""
    if not execution.output_abort:
        return ""
    return f"OutputLimitError: more than {execution.output_abort} characters of output; the code was stopped"
