"""Decide whether two bare answers mean the same thing, and say why in words.

The rules (docs/grading.md has the full list with examples):
- numbers compare exactly unless a side shows a decimal: then it must agree to the digits it shows, and
  show at least ~4 significant digits of the other value (`config.min_relative_precision`);
- expressions with variables compare by evaluation at fixed rational points (exact for rational functions);
- `x = 5` names the value 5 (the side that is not a label); two real equations compare as equations
  (one is a non-zero multiple of the other); inequalities in one variable become intervals;
- bare lists and sets `{...}` are unordered (duplicates ignored); `(a, b)` is ordered and a bare list
  against it is read in order; `[a, b]` is a closed interval or, against a list, a list;
- `x%` equals x or x/100, `x°` equals x or x*pi/180; `a ± b` stands for both values;
- what cannot be evaluated (unknown functions, symbolic sums) compares by canonical structure.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace
from fractions import Fraction

from tir_harness.grading import timeouts
from tir_harness.grading.config import DEFAULT_CONFIG, GraderConfig
from tir_harness.grading.nodes import (
    NEG_ONE,
    PM,
    Add,
    Const,
    Degree,
    Func,
    Interval,
    Matrix,
    Mul,
    Node,
    Num,
    Percent,
    Pow,
    Rel,
    Seq,
    Sym,
    Text,
    Union,
    contains,
    free_symbols,
    key,
    neg,
    show,
)
from tir_harness.grading.normalize import MATH_WORDS, MAX_CLEAN_CHARS, clean
from tir_harness.grading.numeric import Ball, DomainError, Evaluator, NotNumeric, is_real, match
from tir_harness.grading.parsing import FUNCTIONS, MULTI_ARG, ParseError, parse


@dataclass(frozen=True)
class Outcome:
    equal: bool
    reason: str


INF = Const("inf")
_WORDS = re.compile(r"[A-Za-z][A-Za-z'\- ]*[A-Za-z]")
_CHOICE_ONLY = re.compile(r"\(?([A-J])\)?[.:]?")
# `(C) Cecile`, `C. x = 42`, `C Cecile`; but not `E *2`, which is math.
_CHOICE_WITH_TEXT = re.compile(r"\(([A-J])\)\s*\S.*|([A-J])[.:)]\s*\S.*|([A-J])\s+[A-Za-z].*", re.DOTALL)
_NEGATIVE_POINT = 4
_POINTS = 5


def equivalent(pred: str, gold: str, config: GraderConfig = DEFAULT_CONFIG) -> bool:
    return compare_texts(pred, gold, config).equal


def compare_texts(pred: str, gold: str, config: GraderConfig = DEFAULT_CONFIG) -> Outcome:
    """Compare two bare answers (already extracted from any response)."""
    if pred.strip() and pred.strip() == gold.strip():
        return Outcome(True, "identical text")  # whatever the rules below make of it
    if max(len(pred), len(gold)) > MAX_CLEAN_CHARS:
        same = pred.strip() == gold.strip()
        return Outcome(same, "identical text" if same else "answer too long to compare (not identical)")
    cp, cg = clean(pred), clean(gold)
    if not cp:
        return Outcome(False, "no answer")
    if _squash(cp) == _squash(cg):
        return Outcome(True, "same text after normalization")
    choice = _compare_choice(cp, cg)
    if choice is not None:
        return choice
    value_p, value_g = _operation_value(cp), _operation_value(cg)
    if (value_p is None) != (value_g is None):
        return compare_texts(value_p or cp, value_g or cg, config)
    np_, ng = parse_answer(cp, config), parse_answer(cg, config)
    if np_ is None or ng is None:
        same = _squash(cp).lower() == _squash(cg).lower()
        which = "prediction" if np_ is None else "gold"
        return Outcome(same, "equal as text" if same else f"different text ({which} is not math): {cp} vs {cg}")
    outcome = _Comparer(config).nodes(np_, ng)
    if not outcome.equal:
        alternative = _decimal_comma(cp, cg)
        if alternative is not None:
            return compare_texts(*alternative, config)
    return outcome


@functools.lru_cache(maxsize=8192)
def parse_answer(cleaned: str, config: GraderConfig = DEFAULT_CONFIG) -> Node | None:
    """The parsed answer, a `Text` for word answers, or None if it is neither math nor words."""
    if len(cleaned) > config.max_answer_chars:
        return None
    if _WORDS.fullmatch(cleaned) and not _mathy_word(cleaned):
        return Text(_text_key(cleaned))
    try:
        return parse(cleaned, max_depth=config.max_depth)
    except (ParseError, RecursionError, ValueError, ZeroDivisionError):
        return None


def _mathy_word(text: str) -> bool:
    """Short letter runs are products of variables (`xy`, `AB`); longer words are words.  Letters joined by
    minus signs (`p - q`, `b-a`) are a difference of variables, not a hyphenated word (`x-axis`)."""
    words = text.split()
    if len(words) == 1 and (len(text) <= 2 or text in MATH_WORDS or text in FUNCTIONS or text in MULTI_ARG):
        return True
    if "-" in text and "'" not in text:
        tokens = [t for t in re.split(r"[\s-]+", text) if t]
        return all(len(t) <= 2 or t in FUNCTIONS for t in tokens)
    return False


def _squash(text: str) -> str:
    """Spaces only matter between letters or digits: `x = 5` is `x=5`, but `2 3` is not `23`."""
    return re.sub(r"\s*([^\w\s])\s*", r"\1", text)


def _text_key(text: str) -> str:
    # A leading article does not change a word answer: `an ellipse` is `ellipse` (but `a b` stays two letters).
    text = re.sub(r"^\s*(?:a|an|the)\s+(?=[a-z]{3})", "", text.lower())
    return re.sub(r"[^0-9a-z]+", "", text)


# The left side of `\frac{d}{dx}(x^2) = 2x` is an operation whose value the right side gives, unlike the
# left side of a genuine equation (`2x + z = 1`).
_OPERATION_SIDE = re.compile(
    r"\\[dt]?frac\s*\{\s*d[^{}]*\}\s*\{\s*d|\\(?:int|iint|oint|lim|sum|prod|det|max|min|gcd|operatorname)(?![A-Za-z])"
    r"|\bd\s*/\s*d[a-z]\b|\b(?:gcd|lcm|max|min)\s*\("
)


def _operation_value(cleaned: str) -> str | None:
    """The right side of `operation = value`, else None."""
    sides = cleaned.split("=")
    if len(sides) != 2 or not sides[1].strip() or not _OPERATION_SIDE.search(sides[0]):
        return None
    return sides[1].strip()


def _compare_choice(cp: str, cg: str) -> Outcome | None:
    """Multiple choice: a lone letter against `(C)`, `C Cecile`, `(C) Cecile`."""
    lp, lg = _CHOICE_ONLY.fullmatch(cp), _CHOICE_ONLY.fullmatch(cg)
    if lp and lg:
        return None  # plain letters: the general comparison handles them
    if lp or lg:
        letter = (lp or lg).group(1)  # type: ignore[union-attr]
        other = _CHOICE_WITH_TEXT.fullmatch(cg if lp else cp)
        if other is None:
            return None
        other_letter = other.group(1) or other.group(2) or other.group(3)
        if letter == other_letter:
            return Outcome(True, f"same choice {letter}")
        return Outcome(False, f"different choices: {letter} vs {other_letter}")
    return None


def _decimal_comma(cp: str, cg: str) -> tuple[str, str] | None:
    """`2,74` read as 2.74, only against a number written with a decimal point."""
    comma, point = re.compile(r"-?\d+,\d+"), re.compile(r"-?\d*\.\d+")
    if comma.fullmatch(cp) and point.fullmatch(cg):
        return cp.replace(",", "."), cg
    if comma.fullmatch(cg) and point.fullmatch(cp):
        return cp, cg.replace(",", ".")
    return None


# -- labels and relations -----------------------------------------------------------------------------------


def is_label(node: Node) -> bool:
    """Does `node` name a quantity (x, f(x), a_{37}, |AB|, A:B, NO/BO, (p, q)) rather than give a value?"""
    if isinstance(node, Sym):
        return True
    if isinstance(node, Func):
        if node.name.startswith(("apply:", "index:")):
            return True
        return node.name == "abs" and is_label(node.args[0])
    if isinstance(node, Mul):
        return all(is_label(a) or (isinstance(a, Pow) and a.exp == NEG_ONE and is_label(a.base)) for a in node.args)
    if isinstance(node, Seq) and node.kind in ("ratio", "tuple"):
        return all(is_label(i) for i in node.items)
    return False


def _is_constant(node: Node) -> bool:
    return not free_symbols(node)


def value_of(rel: Rel) -> Node | None:
    """The value a chain of `=`/`≈`/`∈` names, or None for a genuine equation such as 2x + z = 1."""
    if not set(rel.ops) <= {"=", "~", "in"}:
        return None
    via = ("=",) + rel.ops
    labels = [is_label(p) for p in rel.parts]
    if any(labels):
        candidates = [(p, op) for p, op, lab in zip(rel.parts, via, labels, strict=False) if not lab]
    elif all(_is_constant(p) for p in rel.parts):
        candidates = list(zip(rel.parts, via, strict=False))
    else:
        return None
    exact = [p for p, op in candidates if op != "~"]
    approx = [p for p, op in candidates if op == "~"]
    if exact:
        return exact[-1]
    return approx[-1] if approx else None


_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}


def as_interval(rel: Rel, config: GraderConfig) -> Node | None:
    """`x > 5` -> (5, oo); `-2 <= x <= 7` -> [-2, 7]; `x != 3` -> (-oo, 3) U (3, oo); else None."""
    ops = rel.ops
    if len(rel.parts) == 3:
        if not (set(ops) <= {"<", "<="} or set(ops) <= {">", ">="}):
            return None
        lo, mid, hi = rel.parts
        if not (is_label(mid) and _is_constant(lo) and _is_constant(hi)):
            return None
        if ops[0] in (">", ">="):
            lo, hi, ops = hi, lo, (_FLIP[ops[1]], _FLIP[ops[0]])
        return Interval(lo, hi, ops[0] == "<=", ops[1] == "<=")
    if len(rel.parts) != 2 or not (ops[0] in _FLIP or ops[0] == "!="):
        return None
    left, right = rel.parts
    op = ops[0]
    if is_label(left) and _is_constant(right):
        bound = right
    elif is_label(right) and _is_constant(left):
        bound, op = left, _FLIP.get(op, op)
    else:
        solved = _solve_linear(Add((left, neg(right))), config)
        if solved is None:
            return None
        bound, negative = solved
        if negative:
            op = _FLIP.get(op, op)
    if op == "!=":
        return Union((Interval(neg(INF), bound, False, False), Interval(bound, INF, False, False)))
    if op in ("<", "<="):
        return Interval(neg(INF), bound, False, op == "<=")
    return Interval(bound, INF, op == ">=", False)


def _solve_linear(expr: Node, config: GraderConfig) -> tuple[Node, bool] | None:
    """Root of a*x + b in one variable and whether a < 0, if the expression is linear with rational a, b."""
    names = free_symbols(expr)
    if len(names) != 1:
        return None
    (name,) = names
    values = []
    for x in (0, 1, 2, -3):
        try:
            ball = Evaluator(config, {name: Ball(Fraction(x))}).ev(expr)
        except NotNumeric:
            return None
        if not ball.exact:
            return None
        values.append(ball.v)
    b, a = values[0], values[1] - values[0]
    if a == 0 or values[2] != 2 * a + b or values[3] != -3 * a + b:
        return None
    return Num(-b / a), a < 0


# -- the comparison ------------------------------------------------------------------------------------------


def _point(symbol_index: int, point: int) -> Fraction:
    """Fixed, irregular rational sample values, distinct per symbol; point 4 is negative."""
    if point == _NEGATIVE_POINT:
        return -Fraction(97 + 41 * symbol_index, 53 + 5 * symbol_index)
    return Fraction(101 + 37 * symbol_index + 53 * point + 11 * symbol_index * point, 61 + 7 * symbol_index + 3 * point)


def _kind(node: Node) -> str:
    if isinstance(node, Seq):
        return node.kind
    if isinstance(node, Interval):
        return "interval"
    if isinstance(node, Union):
        return "union"
    if isinstance(node, Matrix):
        return "matrix"
    if isinstance(node, Rel):
        return "relation"
    if isinstance(node, Text):
        return "text"
    return "scalar"


def _unwrap(node: Node) -> Node:
    while True:
        if isinstance(node, Seq) and node.kind in ("list", "set") and len(node.items) == 1:
            node = node.items[0]
        elif isinstance(node, Union) and len(node.parts) == 1:
            node = node.parts[0]
        else:
            return node


def expand_pm(node: Node) -> list[Node]:
    """All sign choices of the ± in `node` (at most 8)."""
    if not contains(node, (PM,)):
        return [node]
    if isinstance(node, PM):
        a = [None] if node.a is None else expand_pm(node.a)
        out: list[Node] = []
        for b in expand_pm(node.b):
            for x in a:
                out += [b, neg(b)] if x is None else [Add((x, b)), Add((x, neg(b)))]
        return out[:8]
    if isinstance(node, (Add, Mul)):
        combos: list[list[Node]] = [[]]
        for arg in node.args:
            combos = [c + [v] for c in combos for v in expand_pm(arg)][:8]
        return [type(node)(tuple(c)) for c in combos]
    if isinstance(node, Pow):
        return [Pow(b, e) for b in expand_pm(node.base) for e in expand_pm(node.exp)][:8]
    if isinstance(node, Func):
        return [Func(node.name, (v,) + node.args[1:]) for v in expand_pm(node.args[0])]
    return [node]


class _Comparer:
    def __init__(self, config: GraderConfig) -> None:
        self.config = config

    def nodes(self, a: Node, b: Node) -> Outcome:
        timeouts.check()
        a, b = _unwrap(a), _unwrap(b)
        if key(a) == key(b):
            return Outcome(True, "same expression")
        if isinstance(a, Rel) or isinstance(b, Rel):
            return self.relations(a, b)
        ka, kb = _kind(a), _kind(b)
        if ka == "scalar" and kb == "scalar" and not (contains(a, (PM,)) or contains(b, (PM,))):
            return self.scalars(a, b)
        return self.collections(a, b, ka, kb)

    # -- relations -----------------------------------------------------------------------------------
    def relations(self, a: Node, b: Node) -> Outcome:
        if isinstance(a, Rel) and isinstance(b, Rel):
            if a.ops == ("=",) and b.ops == ("=",) and self.equations_equivalent(a, b):
                return Outcome(True, "equivalent equations")
            ia, ib = as_interval(a, self.config), as_interval(b, self.config)
            if ia is not None and ib is not None:
                return self.nodes(ia, ib)
        va = self.value(a) if isinstance(a, Rel) else a
        vb = self.value(b) if isinstance(b, Rel) else b
        if va is None or vb is None:
            if isinstance(a, Rel) and isinstance(b, Rel):
                return Outcome(False, f"different relations: {show(a)} vs {show(b)}")
            return Outcome(False, f"equation vs value: {show(a)} vs {show(b)}")
        inner = self.nodes(va, vb)
        read = [f"{show(r)} as {show(v)}" for r, v in ((a, va), (b, vb)) if isinstance(r, Rel)]
        return Outcome(inner.equal, f"{inner.reason} (reading {' and '.join(read)})")

    def value(self, rel: Rel) -> Node | None:
        value = value_of(rel)
        return value if value is not None else as_interval(rel, self.config)

    def equations_equivalent(self, a: Rel, b: Rel) -> bool:
        """One equation is a non-zero constant multiple of the other (checked at the sample points)."""
        ga, gb = Add((a.parts[0], neg(a.parts[1]))), Add((b.parts[0], neg(b.parts[1])))
        names = sorted(free_symbols(ga) | free_symbols(gb))
        if not names:
            return False
        ratio: Ball | None = None
        checked = 0
        for point in range(_NEGATIVE_POINT):
            ev = Evaluator(self.config, {n: Ball(_point(i, point)) for i, n in enumerate(names)})
            try:
                va, vb = ev.ev(ga), ev.ev(gb)
                if match(vb, Ball(Fraction(0)), ev):
                    if match(va, Ball(Fraction(0)), ev):
                        continue
                    return False
                r = ev.mul(va, ev.inv(vb))
            except DomainError:
                continue
            except NotNumeric:
                return False
            if match(r, Ball(Fraction(0)), ev):
                return False
            if ratio is not None and not match(r, ratio, ev):
                return False
            ratio = r
            checked += 1
        return checked >= 2

    # -- collections ---------------------------------------------------------------------------------
    def collections(self, a: Node, b: Node, ka: str, kb: str) -> Outcome:
        if "text" in (ka, kb):
            return Outcome(False, f"different kinds: {show(a)} vs {show(b)}")
        # A scalar with ± stands for its values, an unordered collection.
        ka = "values" if ka == "scalar" and contains(a, (PM,)) else ka
        kb = "values" if kb == "scalar" and contains(b, (PM,)) else kb
        kinds = {ka, kb}
        if ka == kb == "bracket":
            return self.ordered(list(a.items), list(b.items), "lists")  # type: ignore[union-attr]
        if kinds <= {"list", "set", "values", "scalar"} or (kinds <= {"list", "set", "bracket"}):
            return self.as_sets(self.items(a), self.items(b))
        if "list" in kinds and kinds & {"tuple", "ratio"}:
            xs = self.items(a, expand=False) if ka == "list" else list(a.items)  # type: ignore[union-attr]
            ys = self.items(b, expand=False) if kb == "list" else list(b.items)  # type: ignore[union-attr]
            return self.ordered(xs, ys, "ordered values")
        if ka == kb and ka in ("tuple", "ratio"):
            return self.ordered(list(a.items), list(b.items), f"{ka}s")  # type: ignore[union-attr]
        if "matrix" in kinds:
            return self.matrices(a, b)
        if kinds & {"interval", "union"} or kinds == {"tuple", "bracket"}:
            return self.interval_sets(a, b)
        if "set" in kinds and "tuple" in kinds:
            return Outcome(False, f"set vs ordered tuple: {show(a)} vs {show(b)}")
        return Outcome(False, f"different kinds: {show(a)} vs {show(b)}")

    def items(self, node: Node, expand: bool = True) -> list[Node]:
        """Elements of a bare list or set; `x = 3` items give their values, `1 ± 2` gives both values."""
        raw = list(node.items) if isinstance(node, Seq) and node.kind in ("list", "set", "bracket") else [node]
        out: list[Node] = []
        for item in raw:
            if isinstance(item, Rel):
                value = self.value(item)
                item = value if value is not None else item
            if isinstance(item, Seq) and item.kind == "tuple" and all(isinstance(i, Rel) for i in item.items):
                values = [self.value(i) for i in item.items]  # type: ignore[arg-type]
                if all(v is not None for v in values):
                    item = Seq("tuple", tuple(values))  # type: ignore[arg-type]
            if isinstance(item, Seq) and item.kind in ("list", "set") and expand:
                out += self.items(item)
            else:
                out += expand_pm(item) if expand else [item]
        return out

    def as_sets(self, xs: list[Node], ys: list[Node]) -> Outcome:
        xs, ys = self.distinct(xs), self.distinct(ys)
        if len(xs) != len(ys):
            return Outcome(False, f"different numbers of values: {len(xs)} vs {len(ys)}")
        unmatched = list(ys)
        for x in xs:
            for i, y in enumerate(unmatched):
                if self.nodes(x, y).equal:
                    del unmatched[i]
                    break
            else:
                return Outcome(False, f"{show(x)} is not among {', '.join(show(y) for y in ys)}")
        return Outcome(True, f"equal as sets of {len(xs)} values" if len(xs) > 1 else "equal as values")

    def distinct(self, xs: list[Node]) -> list[Node]:
        out: list[Node] = []
        for x in xs:
            if len(xs) > 30:
                if all(key(x) != key(y) for y in out):
                    out.append(x)
            elif not any(self.nodes(x, y).equal for y in out):
                out.append(x)
        return out

    def ordered(self, xs: list[Node], ys: list[Node], what: str) -> Outcome:
        if len(xs) != len(ys):
            return Outcome(False, f"different lengths: {len(xs)} vs {len(ys)}")
        for i, (x, y) in enumerate(zip(xs, ys, strict=False)):
            outcome = self.nodes(x, y)
            if not outcome.equal:
                return Outcome(False, f"differ at position {i + 1}: {outcome.reason}")
        return Outcome(True, f"equal as {what}")

    def interval_sets(self, a: Node, b: Node) -> Outcome:
        pa, pb = self.intervals_of(a), self.intervals_of(b)
        if pa is None or pb is None:
            return Outcome(False, f"different kinds: {show(a)} vs {show(b)}")
        if len(pa) != len(pb):
            return Outcome(False, f"different numbers of intervals: {len(pa)} vs {len(pb)}")
        if len(pa) == 1:
            return self.one_interval(pa[0], pb[0])
        unmatched = list(pb)
        for x in pa:
            for i, y in enumerate(unmatched):
                if self.one_interval(x, y).equal:
                    del unmatched[i]
                    break
            else:
                return Outcome(False, f"{show(x)} does not match {show(b)}")
        return Outcome(True, "equal as intervals")

    def intervals_of(self, node: Node) -> list[Node] | None:
        if isinstance(node, Union):
            parts = [self.intervals_of(p) for p in node.parts]
            if any(p is None for p in parts):
                return None
            return [i for p in parts for i in p]  # type: ignore[union-attr]
        if isinstance(node, Interval):
            return [node]
        if isinstance(node, Seq) and node.kind in ("tuple", "bracket") and len(node.items) == 2:
            closed = node.kind == "bracket"
            return [Interval(node.items[0], node.items[1], closed, closed)]
        if isinstance(node, Seq) and node.kind in ("set", "list"):
            return [node]
        if _kind(node) == "scalar":
            return [Seq("set", (node,))]
        return None

    def one_interval(self, a: Node, b: Node) -> Outcome:
        if not (isinstance(a, Interval) and isinstance(b, Interval)):
            if isinstance(a, Interval) or isinstance(b, Interval):
                return Outcome(False, "interval vs set")
            return self.nodes(a, b)
        for x, y, cx, cy in ((a.lo, b.lo, a.lo_closed, b.lo_closed), (a.hi, b.hi, a.hi_closed, b.hi_closed)):
            sx, sy = _infinity(x), _infinity(y)
            if sx or sy:
                if sx != sy:
                    return Outcome(False, f"different endpoints: {show(x)} vs {show(y)}")
                continue  # a bracket at infinity is a slip of notation, not a different set
            if cx != cy:
                return Outcome(False, f"different brackets: {show(a)} vs {show(b)}")
            outcome = self.scalars(x, y)
            if not outcome.equal:
                return Outcome(False, f"different endpoints: {outcome.reason}")
        return Outcome(True, "equal as intervals")

    def matrices(self, a: Node, b: Node) -> Outcome:
        ra, rb = _rows(_matrix_arithmetic(a)), _rows(_matrix_arithmetic(b))
        if ra is None or rb is None:
            return Outcome(False, f"different kinds: {show(a)} vs {show(b)}")
        if len(ra) != len(rb) or any(len(x) != len(y) for x, y in zip(ra, rb, strict=False)):
            if _flat_vector(ra) is not None and _flat_vector(rb) is not None:
                return self.ordered(_flat_vector(ra), _flat_vector(rb) or [], "vectors")  # type: ignore[arg-type]
            return Outcome(False, "different shapes")
        for x, y in zip(ra, rb, strict=False):
            for u, v in zip(x, y, strict=False):
                outcome = self.nodes(u, v)
                if not outcome.equal:
                    return Outcome(False, f"different entries: {outcome.reason}")
        return Outcome(True, "equal as matrices")

    # -- scalars -------------------------------------------------------------------------------------
    def scalars(self, a: Node, b: Node) -> Outcome:
        for unit, scale in ((Percent, Fraction(1, 100)), (Degree, None)):
            if isinstance(a, unit) or isinstance(b, unit):
                return self.with_unit(a, b, unit, scale)
        names = sorted(free_symbols(a) | free_symbols(b))
        try:
            if not names:
                ev = Evaluator(self.config)
                decimal = self.decimal(a, b, ev)
                if decimal is not None:
                    return decimal
                va, vb = ev.ev(a), ev.ev(b)
                how = match(va, vb, ev)
                if how == "exact" and not (va.exact and vb.exact):
                    # Agreement to ~75 digits is not proof: 2^(2^-1000) and 1 agree that far. Look again, closer.
                    fine = Evaluator(replace(self.config, precision_bits=self.config.confirm_precision_bits))
                    how = match(fine.ev(a), fine.ev(b), fine)
                if how == "exact":
                    return Outcome(True, "equal as numbers")
                if how == "rounded":
                    return Outcome(True, "equal to the decimals shown")
                return Outcome(False, f"different values: {show(a)} vs {show(b)}")
            return self.sampled(a, b, names)
        except NotNumeric:
            same = key(a) == key(b)
            return Outcome(same, "same structure" if same else f"different expressions: {show(a)} vs {show(b)}")

    def decimal(self, a: Node, b: Node, ev: Evaluator) -> Outcome | None:
        """A bare decimal `d` with k digits stands for what rounds or truncates to it: |v| in [|d| - u/2, |d| + u),
        u = 10**-k, with the same sign; it must show u <= min_relative_precision * |v| (about 4 digits)."""
        da, db = _bare_decimal(a), _bare_decimal(b)
        if da is None and db is None:
            return None
        if da is not None and db is not None:
            (d, k), other = (da, b) if da[1] <= db[1] else (db, a)
        else:
            (d, k), other = (da, b) if da is not None else (db, a)  # type: ignore[misc]
        value = ev.ev(other)
        if value.exact and value.v == d:
            return Outcome(True, "equal as numbers")
        ctx = ev.ctx
        v = ev.mp(value).v
        dm = ctx.mpf(d.numerator) / d.denominator
        magnitude = max(abs(v), abs(dm))
        shown = f"{show(a)} vs {show(b)}"
        if not is_real(value, ctx):
            return Outcome(False, f"different values: {shown}")
        v = ctx.re(v)
        if abs(v - dm) <= self.config.float_noise * magnitude:
            return Outcome(True, "equal up to floating-point noise")
        unit = ctx.mpf(10) ** -k
        if unit > self.config.min_relative_precision * magnitude:
            return Outcome(False, f"different values: {shown} (too few digits to stand for the other)")
        if (v < 0) != (dm < 0) and dm != 0:
            return Outcome(False, f"different values: {shown}")
        excess = abs(v) - abs(dm)
        if value.exact and value.aerr == 0:
            # In rationals: a value exactly half a unit below, as 3/256 = 0.01171875 is for 0.0117188 (its
            # rounding to 7 places), sits on the boundary, which binary arithmetic puts on either side.
            excess, unit = abs(value.v) - abs(d), Fraction(1, 10**k)
        if -unit / 2 <= excess < unit:
            return Outcome(True, f"equal to the {k} decimals shown")
        return Outcome(False, f"different values: {shown}")

    def with_unit(self, a: Node, b: Node, unit: type, scale: Fraction | None) -> Outcome:
        """`x%` equals x or x/100; `x°` equals x or x*pi/180."""
        if isinstance(a, unit) and isinstance(b, unit):
            return self.nodes(a.x, b.x)  # type: ignore[attr-defined]
        marked, plain = (a, b) if isinstance(a, unit) else (b, a)
        inner = marked.x  # type: ignore[attr-defined]
        first = self.nodes(plain, inner)
        if first.equal:
            return Outcome(True, f"{first.reason} (unit {'%' if unit is Percent else '°'} dropped)")
        factor: Node = Num(scale) if scale is not None else Mul((Const("pi"), Pow(Num(Fraction(180)), NEG_ONE)))
        second = self.nodes(plain, Mul((inner, factor)))
        if second.equal:
            return Outcome(True, f"{second.reason} ({show(marked)} converted)")
        return Outcome(False, f"different values: {show(a)} vs {show(b)}")

    def sampled(self, a: Node, b: Node, names: list[str]) -> Outcome:
        agreed = 0
        for point in range(_POINTS):
            ev = Evaluator(self.config, {n: Ball(_point(i, point)) for i, n in enumerate(names)})
            try:
                va, vb = ev.ev(a), ev.ev(b)
            except DomainError:
                continue
            same = match(va, vb, ev)
            if point == _NEGATIVE_POINT:
                # Only a disagreement between two real values counts here (|x| vs x); complex branches
                # of logs and roots at negative arguments are not what the answer meant.
                if not same and is_real(va, ev.ctx) and is_real(vb, ev.ctx) and agreed:
                    return Outcome(False, f"different for negative values: {show(a)} vs {show(b)}")
                continue
            if not same:
                return Outcome(False, f"different expressions: {show(a)} vs {show(b)}")
            agreed += 1
        if agreed >= 2:
            return Outcome(True, f"equal as expressions (checked at {agreed} points)")
        raise NotNumeric("too few sample points")


def _bare_decimal(node: Node) -> tuple[Fraction, int] | None:
    """(value, digits after the point) of a number written with a decimal point, e.g. `-0.25` or `1.5e-3`."""
    if isinstance(node, Num) and node.decimals is not None:
        return node.value, node.decimals
    return None


def _infinity(node: Node) -> int:
    if node == INF:
        return 1
    if isinstance(node, Mul) and len(node.args) == 2 and node.args[0] == NEG_ONE and node.args[1] == INF:
        return -1
    return 0


def _matrix_arithmetic(node: Node) -> Node:
    """Sums and products of explicit matrices, entry by entry (`A + B`, `2A`, `AB`); else `node`."""
    if isinstance(node, Add):
        terms = [_matrix_arithmetic(t) for t in node.args]
        if all(isinstance(t, Matrix) for t in terms):
            shape = {(len(t.rows), len(t.rows[0])) for t in terms}  # type: ignore[union-attr]
            if len(shape) == 1:
                rows, cols = shape.pop()
                return Matrix(
                    tuple(
                        tuple(Add(tuple(t.rows[i][j] for t in terms)) for j in range(cols))  # type: ignore[union-attr]
                        for i in range(rows)
                    )
                )
        return node
    if isinstance(node, Mul):
        factors = [_matrix_arithmetic(f) for f in node.args]
        if not any(isinstance(f, Matrix) for f in factors):
            return node
        scalars = [f for f in factors if not isinstance(f, Matrix)]
        if any(_kind(f) != "scalar" for f in scalars):
            return node
        matrices = [f for f in factors if isinstance(f, Matrix)]
        product = matrices[0]
        for right in matrices[1:]:
            if len(product.rows[0]) != len(right.rows):
                return node
            product = Matrix(
                tuple(
                    tuple(
                        Add(tuple(Mul((row[k], right.rows[k][j])) for k in range(len(right.rows))))
                        for j in range(len(right.rows[0]))
                    )
                    for row in product.rows
                )
            )
        if scalars:
            product = Matrix(tuple(tuple(Mul(tuple(scalars) + (c,)) for c in row) for row in product.rows))
        return product
    return node


def _rows(node: Node) -> list[list[Node]] | None:
    if isinstance(node, Matrix):
        return [list(r) for r in node.rows]
    if isinstance(node, Seq) and node.kind in ("bracket", "tuple", "list"):
        if all(isinstance(r, Seq) and r.kind in ("bracket", "tuple") for r in node.items):
            return [list(r.items) for r in node.items]  # type: ignore[attr-defined]
        return [list(node.items)]
    return None


def _flat_vector(rows: list[list[Node]]) -> list[Node] | None:
    if len(rows) == 1:
        return rows[0]
    if all(len(r) == 1 for r in rows):
        return [r[0] for r in rows]
    return None
