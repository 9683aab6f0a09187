"""How numbers are written for people, the same in the terminal, summary.md, gate messages and HTML."""

from __future__ import annotations

from collections.abc import Sequence


def percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def interval(ci: Sequence[float]) -> str:
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def p_value(p: float) -> str:
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.1e}"
