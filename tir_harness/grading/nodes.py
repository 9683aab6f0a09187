"""The parsed form of an answer: a small tree of immutable nodes.

Scalars are `Num`, `Sym`, `Const`, `Add`, `Mul`, `Pow`, `Func`, `PM` (a ± b); collections and relations
wrap them. Subtraction is `Add(a, Mul(-1, b))` and division `Mul(a, Pow(b, -1))`, so that `key()` gives
one canonical string for the same expression written in a different order.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


class Node:
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Num(Node):
    value: Fraction
    decimals: int | None = None  # digits shown after the decimal point; None for an exact number


@dataclass(frozen=True, slots=True)
class Sym(Node):
    name: str


@dataclass(frozen=True, slots=True)
class Const(Node):
    name: str  # "pi", "e", "i", "inf"


@dataclass(frozen=True, slots=True)
class Add(Node):
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Mul(Node):
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Pow(Node):
    base: Node
    exp: Node


@dataclass(frozen=True, slots=True)
class Func(Node):
    # Known functions by name ("sqrt", "sin", "log", "root", "factorial", ...); "sum"/"prod" take
    # (variable, low, high, body); an unknown function applied, `f(x)`, is "apply:f"; `F_{n-1}` is "index:F".
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class PM(Node):
    """`a ± b` (a may be None for a leading ±): stands for both values."""

    a: Node | None
    b: Node


@dataclass(frozen=True, slots=True)
class Percent(Node):
    x: Node


@dataclass(frozen=True, slots=True)
class Degree(Node):
    x: Node


@dataclass(frozen=True, slots=True)
class Seq(Node):
    # "tuple" (a, b) | "bracket" [a, b] | "set" \{a, b\} | "list" (bare a, b or {a, b}) | "ratio" a:b
    kind: str
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Interval(Node):
    lo: Node
    hi: Node
    lo_closed: bool
    hi_closed: bool


@dataclass(frozen=True, slots=True)
class Union(Node):
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Rel(Node):
    parts: tuple[Node, ...]
    ops: tuple[str, ...]  # "=", "~" (approx), "<", "<=", ">", ">=", "!=", "in"


@dataclass(frozen=True, slots=True)
class Matrix(Node):
    rows: tuple[tuple[Node, ...], ...]


@dataclass(frozen=True, slots=True)
class Text(Node):
    text: str


NEG_ONE = Num(Fraction(-1))


def neg(x: Node) -> Node:
    if isinstance(x, Num):
        return Num(-x.value, x.decimals)
    if isinstance(x, Percent):  # -5% is (-5)%: keep the unit outermost
        return Percent(neg(x.x))
    if isinstance(x, Degree):
        return Degree(neg(x.x))
    return Mul((NEG_ONE, x))


def key(node: Node) -> str:
    """Canonical text of a node: equal keys mean the same expression up to order of terms and factors."""
    if isinstance(node, Num):
        return str(node.value)
    if isinstance(node, Sym):
        return node.name
    if isinstance(node, Const):
        return "#" + node.name
    if isinstance(node, Add):
        return "(" + "+".join(sorted(key(a) for a in node.args)) + ")"
    if isinstance(node, Mul):
        return "(" + "*".join(sorted(key(a) for a in node.args)) + ")"
    if isinstance(node, Pow):
        return f"({key(node.base)}^{key(node.exp)})"
    if isinstance(node, Func):
        return f"{node.name}[{','.join(key(a) for a in node.args)}]"
    if isinstance(node, PM):
        return f"({'' if node.a is None else key(node.a)}±{key(node.b)})"
    if isinstance(node, Percent):
        return f"{key(node.x)}%"
    if isinstance(node, Degree):
        return f"{key(node.x)}°"
    if isinstance(node, Seq):
        return f"{node.kind}<{','.join(key(i) for i in node.items)}>"
    if isinstance(node, Interval):
        return f"{'[' if node.lo_closed else '('}{key(node.lo)},{key(node.hi)}{']' if node.hi_closed else ')'}"
    if isinstance(node, Union):
        return "U<" + ",".join(sorted(key(p) for p in node.parts)) + ">"
    if isinstance(node, Rel):
        out = key(node.parts[0])
        for op, part in zip(node.ops, node.parts[1:], strict=False):
            out += op + key(part)
        return out
    if isinstance(node, Matrix):
        return "M<" + ";".join(",".join(key(c) for c in row) for row in node.rows) + ">"
    if isinstance(node, Text):
        return '"' + node.text + '"'
    raise TypeError(type(node))


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, (Add, Mul)):
        return node.args
    if isinstance(node, Pow):
        return (node.base, node.exp)
    if isinstance(node, Func):
        return node.args
    if isinstance(node, PM):
        return (node.b,) if node.a is None else (node.a, node.b)
    if isinstance(node, (Percent, Degree)):
        return (node.x,)
    if isinstance(node, Seq):
        return node.items
    if isinstance(node, Interval):
        return (node.lo, node.hi)
    if isinstance(node, (Union, Rel)):
        return node.parts
    if isinstance(node, Matrix):
        return tuple(c for row in node.rows for c in row)
    return ()


def free_symbols(node: Node) -> frozenset[str]:
    if isinstance(node, Sym):
        return frozenset((node.name,))
    if isinstance(node, Func) and node.name in ("sum", "prod"):
        var, lo, hi, body = node.args
        bound = free_symbols(body) - free_symbols(var)
        return bound | free_symbols(lo) | free_symbols(hi)
    out: frozenset[str] = frozenset()
    for child in children(node):
        out |= free_symbols(child)
    return out


def contains(node: Node, kinds: tuple[type, ...]) -> bool:
    if isinstance(node, kinds):
        return True
    return any(contains(c, kinds) for c in children(node))


def show(node: Node, limit: int = 60) -> str:
    """A short human-readable rendering, for verdict reasons."""
    text = _show(node)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(node: Node) -> str:
    if isinstance(node, Num):
        if node.decimals is not None and 0 < node.decimals <= 20 and abs(node.value) < 10**15:
            return f"{float(node.value):.{node.decimals}f}"
        v = node.value
        if max(v.numerator.bit_length(), v.denominator.bit_length()) > 3000:
            return "<a very large number>"  # and str() of it could exceed Python's int-to-str limit
        return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"
    if isinstance(node, Sym):
        return node.name
    if isinstance(node, Const):
        return {"pi": "pi", "e": "e", "i": "i", "inf": "oo"}[node.name]
    if isinstance(node, Add):
        out = _show(node.args[0])
        for arg in node.args[1:]:
            s = _show(arg)
            out += f" - {s[1:]}" if s.startswith("-") else f" + {s}"
        return out
    if isinstance(node, Mul):
        if node.args[0] == NEG_ONE:
            return "-" + _wrap(Mul(node.args[1:]) if len(node.args) > 2 else node.args[1])
        num = [a for a in node.args if not (isinstance(a, Pow) and a.exp == NEG_ONE)]
        den = [a.base for a in node.args if isinstance(a, Pow) and a.exp == NEG_ONE]  # type: ignore[union-attr]
        out = "*".join(_wrap(a) for a in num) or "1"
        return out + "".join(f"/{_wrap(d)}" for d in den)
    if isinstance(node, Pow):
        if node.exp == NEG_ONE:
            return f"1/{_wrap(node.base)}"
        return f"{_wrap(node.base)}^{_wrap(node.exp)}"
    if isinstance(node, Func):
        return f"{node.name}({', '.join(_show(a) for a in node.args)})"
    if isinstance(node, PM):
        return f"{'' if node.a is None else _show(node.a) + ' '}± {_wrap(node.b)}"
    if isinstance(node, Percent):
        return f"{_wrap(node.x)}%"
    if isinstance(node, Degree):
        return f"{_wrap(node.x)}°"
    if isinstance(node, Seq):
        inner = (":" if node.kind == "ratio" else ", ").join(_show(i) for i in node.items)
        return {"tuple": f"({inner})", "bracket": f"[{inner}]", "set": f"{{{inner}}}"}.get(node.kind, inner)
    if isinstance(node, Interval):
        return f"{'[' if node.lo_closed else '('}{_show(node.lo)}, {_show(node.hi)}{']' if node.hi_closed else ')'}"
    if isinstance(node, Union):
        return " U ".join(_show(p) for p in node.parts)
    if isinstance(node, Rel):
        out = _show(node.parts[0])
        for op, part in zip(node.ops, node.parts[1:], strict=False):
            out += f" {op} {_show(part)}"
        return out
    if isinstance(node, Matrix):
        return "[" + "; ".join(", ".join(_show(c) for c in row) for row in node.rows) + "]"
    if isinstance(node, Text):
        return node.text
    return type(node).__name__


def _wrap(node: Node) -> str:
    s = _show(node)
    return f"({s})" if isinstance(node, (Add, Mul, PM, Rel)) or s.startswith("-") else s
