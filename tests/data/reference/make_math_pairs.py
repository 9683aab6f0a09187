"""The inputs of `math_pairs.jsonl.gz`: three responses per shipped MATH test problem (README.md here).

    python tests/data/reference/make_math_pairs.py OUT.jsonl

For each of the 5,000 problems: a response with a variant of its gold that a model might write (another
notation, a decimal, a unit, a reordered list, a near miss, ...), a response with another problem's gold, and
`\\boxed{42}` (the wrong answer of benchmarks/perf/harness.py).  The wrappers rotate through ToRA's extraction
paths (box, "the answer is", a ```output block, the last number).  Deterministic: no randomness, no sympy.
The verdicts are added by running the reference's own grader on this file (README.md).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from fractions import Fraction

from tir_harness.run.problems import load

INT = re.compile(r"-?\d+")
FRAC = re.compile(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}")


def _number(gold: str) -> Fraction | None:
    if INT.fullmatch(gold) or re.fullmatch(r"-?\d+\.\d+", gold):
        return Fraction(gold)
    match = FRAC.fullmatch(gold)
    if match and int(match.group(3)) != 0:
        sign = -1 if match.group(1) else 1
        return sign * Fraction(int(match.group(2)), int(match.group(3)))
    return None


def _decimal(value: Fraction, digits: int) -> str:
    return f"{float(value):.{digits}g}"


def variants(gold: str) -> list[tuple[str, str]]:
    """(name, variant) for every rewrite that applies to `gold`, in a fixed order."""
    out: list[tuple[str, str]] = []
    value = _number(gold)
    if value is not None:
        out += [("decimal4", _decimal(value, 4)), ("decimal2", _decimal(value, 2)), ("decimal8", _decimal(value, 8))]
        if value.denominator == 1:
            n = value.numerator
            out += [("trailing_zero", f"{n}.0"), ("near_miss", str(n + 1)), ("percent_x100", str(n * 100)),
                    ("percent_sign", f"{n}\\%"), ("assignment", f"x = {n}"), ("unit", f"{n}\\text{{ cm}}"),
                    ("degrees", f"{n}^\\circ"), ("dollars", f"\\${n}")]  # fmt: skip
            if abs(n) >= 1000:
                out.append(("thousands", f"{n:,}"))
        else:
            out += [("slash", f"{value.numerator}/{value.denominator}"),
                    ("reciprocal", f"\\frac{{{value.denominator}}}{{{value.numerator}}}")]  # fmt: skip
    rewrites: list[tuple[str, Callable[[str], str]]] = [
        ("dfrac", lambda g: g.replace("\\frac", "\\dfrac")),
        ("frac_no_braces", lambda g: re.sub(r"\\frac\{(\d)\}\{(\d)\}", r"\\frac\1\2", g)),
        ("sqrt_no_braces", lambda g: re.sub(r"\\sqrt\{(\d+)\}", r"\\sqrt\1", g)),
        ("left_right", lambda g: g.replace("(", "\\left(").replace(")", "\\right)") if "\\left" not in g else g),
        ("spaces", lambda g: re.sub(r"\s*([+=,-])\s*", r" \1 ", g).strip()),
        ("swap_pair", lambda g: re.sub(r"^\(([^(),]+),([^(),]+)\)$", r"(\2,\1)", g)),
        (
            "swap_list",
            lambda g: (
                ", ".join(reversed(g.split(","))).replace("  ", " ")
                if "," in g and "(" not in g and "{" not in g
                else g
            ),
        ),
        ("swap_terms", lambda g: re.sub(r"^([^+\-{}()]+)\+([^+\-{}()]+)$", r"\2+\1", g)),
        ("pi_decimal", lambda g: g.replace("\\pi", "3.1416")),
        ("brackets", lambda g: "[" + g[1:-1] + "]" if g.startswith("(") and g.endswith(")") else g),
        ("text_unwrapped", lambda g: re.sub(r"\\text\{([^{}]*)\}", r"\1", g)),
        ("times_one", lambda g: f"1\\cdot {g}"),
        ("negated", lambda g: g[1:] if g.startswith("-") else "-" + g),
    ]
    for name, rewrite in rewrites:
        changed = rewrite(gold)
        if changed != gold:
            out.append((name, changed))
    return out


WRAPPERS = (
    "Therefore, the final answer is $\\boxed{{{}}}$.",
    "So the answer is {}.",
    "```python\nprint(answer)\n```\n```output\n{}\n```\n",
    "\\boxed{{{}}}",
)


def pairs() -> list[dict[str, str]]:
    problems = load("math")
    rows = []
    for i, problem in enumerate(problems):
        options = variants(problem.answer)
        name, variant = options[i % len(options)]
        wrapper = WRAPPERS[i % len(WRAPPERS)]
        if _number(variant) is not None and i % 8 == 7:
            wrapper = "We get {} in the end"  # the last number
        other = problems[(i * 7919 + 13) % len(problems)].answer
        for kind, response in (
            (f"variant:{name}", wrapper.format(variant)),
            ("other_gold", WRAPPERS[0].format(other)),
            ("wrong_42", "$\\boxed{42}$"),
        ):
            rows.append({"id": problem.id, "kind": kind, "response": response, "gold": problem.answer})
    return rows


if __name__ == "__main__":
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        for row in pairs():
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
