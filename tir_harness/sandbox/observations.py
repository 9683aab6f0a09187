"""Observation styles: what the model sees of an `Execution`, one registry of name -> style.

Built in: `full` (IPython-like: output, the final expression's repr, the traceback's tail, cut markers and a
note when the session lost its variables), `reference` (the reference implementation's executor,
`sandbox/reference.py`) and `qwen25-math` (Qwen2.5-Math's evaluation code's, `sandbox/qwen_math.py`).  A style
is a renderer `(execution, limit) -> str` and the execution mode it needs:

- mode `live`: each code block runs in the trajectory's live session (`Session.run`);
- mode `reference`: each turn replays every block of the conversation in a fresh IPython shell with the
  reference's semantics (`Session.replay`; the loop parses the blocks with the reference's fence rule).

Add one in a file of your own (docs/extending.md, "Add an observation style"):

    from tir_harness.sandbox.observations import register_style

    def terse(execution, limit):
        return execution.error.last_line if execution.error else execution.output.cut(limit)

    register_style("terse", terse)

or through the entry-point group `tir_harness.observation_styles` (`util/registry.py`).  The prompt format only
wraps the text (run/prompts.py); the executor renders it with the style its configuration names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tir_harness.sandbox import qwen_math, reference
from tir_harness.sandbox.execution import STOPPED, Execution, Text, abort_line, join
from tir_harness.util.registry import Registry, RegistryError

__all__ = [
    "MODES",
    "STYLES",
    "Execution",
    "ObservationStyle",
    "RegistryError",
    "get_style",
    "register_style",
    "style_names",
]

MODES = ("live", "reference")
NOTE_LOST = "[The Python session was restarted: variables from earlier cells are lost.]"

Renderer = Callable[[Execution, int], str]


@dataclass(frozen=True)
class ObservationStyle:
    """How an `Execution` becomes the text the model reads."""

    render: Renderer  # (execution, max_output_chars) -> text; never raises for anything the code did
    mode: str = "live"  # MODES: how the code runs (see the module's docstring)
    max_output_chars: int | None = None  # the cap this style asks for (None: ExecutorConfig's default)
    description: str = ""  # one line, for option help

    def __post_init__(self) -> None:
        if not callable(self.render):
            raise TypeError(f"ObservationStyle.render must be callable, got {type(self.render).__name__}")
        if self.mode not in MODES:
            raise ValueError(f"ObservationStyle.mode must be one of {MODES}, got {self.mode!r}")
        if self.max_output_chars is not None and self.max_output_chars < 20:
            raise ValueError(f"ObservationStyle.max_output_chars must be >= 20, got {self.max_output_chars}")


STYLES: Registry[ObservationStyle] = Registry(
    "observation style", "tir_harness.observation_styles", accepts=ObservationStyle
)


def register_style(name: str, style: ObservationStyle | Renderer) -> ObservationStyle:
    """Register a style (or a bare renderer, which becomes a live-mode style); returns the style."""
    if not isinstance(style, ObservationStyle):
        style = ObservationStyle(style)
    return STYLES.register(name, style)


def get_style(name: str) -> ObservationStyle:
    """The style called `name`; RegistryError (one line, naming the known styles) for an unknown name."""
    return STYLES.get(name)


def style_names() -> tuple[str, ...]:
    return STYLES.names()


# ------------------------------------------------------------------------------------------------- full


def render_full(execution: Execution, limit: int) -> str:
    """Output, then the final expression's display, then the traceback (its tail keeps at least half of the
    budget when all three do not fit); a dead worker's reason with the lost-state note."""
    note = NOTE_LOST + "\n" if execution.restarted else ""
    error = execution.error
    if error is not None and error.when == STOPPED:
        message = f"{error.type}: {error.message}"
        if not execution.restores_state:
            message += "\n" + NOTE_LOST
        return note + message
    pieces = [execution.output, execution.display, error.traceback if error is not None else Text()]
    sizes = [p.total for p in pieces]
    budgets = sizes
    if sum(sizes) > limit:
        # The error's tail says what went wrong: it keeps at least half of the budget.
        shown_error = min(sizes[2], max(limit // 2, limit - sizes[0] - sizes[1]))
        rest = limit - shown_error
        display = min(sizes[1], max(rest // 2, rest - sizes[0]))
        budgets = [rest - display, display, shown_error]
    texts = [p.cut(b, i == 2) for i, (p, b) in enumerate(zip(pieces, budgets, strict=True)) if p.total]
    return note + join(texts + ([abort_line(execution)] if execution.output_abort else []))


STYLES.register(
    "full",
    ObservationStyle(render_full, "live", None, "output, the final expression's repr, the traceback's tail"),
)
STYLES.register(
    "reference",
    ObservationStyle(
        reference.render,
        "reference",
        reference.OUTPUT_CHARS,
        "the reference implementation's executor: every block of the conversation replayed in IPython",
    ),
)

STYLES.register(
    "qwen25-math",
    ObservationStyle(
        qwen_math.render,
        "live",
        4 * qwen_math.OUTPUT_CHARS,  # head and tail of 800 keep upstream's 200 + 200 whole after stripping
        "Qwen2.5-Math's executor: the printed output or the last line's value, 'Done', cut to 400 characters",
    ),
)


# ------------------------------------------------------------------------------------------------- compat


def render(piece: list, budget: int, keep_tail: bool = False) -> str:
    """Text of a [head, tail, total] piece in at most `budget` characters plus a cut marker (`Text.cut`)."""
    return Text(*piece).cut(budget, keep_tail)


def compose(reply: dict, limit: int, style: str, abort: int) -> str:
    """The text of a worker's reply (a `protocol.decode_reply` dict) in `style`."""
    from tir_harness.sandbox.protocol import execution_of

    return get_style(style).render(execution_of(reply, limit, abort), limit)
