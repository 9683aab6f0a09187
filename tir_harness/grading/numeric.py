"""Evaluate a scalar expression to a number with a bound on its error.

Integers and fractions stay exact (`fractions.Fraction`) while they are small; anything else is a
high-precision mpmath number. Every value carries two error bounds:
- `rad`: rounding error of the high-precision arithmetic (zero for exact values);
- `aerr`: what the decimals in the expression leave open (`0.333` stands for anything within 0.001 of it,
  as the model may have rounded or truncated).
Two values are *exactly equal* when they agree within `rad`; `aerr` only matters for the tolerance rule.

Bounded by construction: exact powers and factorials only up to `max_exact_bits`, numbers only up to a
binary exponent of `max_exponent_bits`, trig arguments below 2**100, series up to `max_series_terms`;
beyond that `TooLarge`, and the caller compares structure instead.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import mpmath

from tir_harness.grading import timeouts
from tir_harness.grading.config import GraderConfig
from tir_harness.grading.nodes import Add, Const, Degree, Func, Mul, Node, Num, Percent, Pow, Sym


class NotNumeric(Exception):
    """The expression has no numeric value here (a set, an unknown function, a free symbol...)."""


class DomainError(NotNumeric):
    """Division by zero, log of zero, factorial of a negative integer..."""


class TooLarge(NotNumeric):
    """Evaluating would not be bounded in time or memory."""


_local = threading.local()


def context(precision_bits: int) -> Any:
    """A private mpmath context per thread: mpmath's global one is shared state (sympy changes its precision)."""
    contexts = getattr(_local, "contexts", None)
    if contexts is None:
        contexts = _local.contexts = {}
    ctx = contexts.get(precision_bits)
    if ctx is None:
        ctx = contexts[precision_bits] = mpmath.MPContext()
        ctx.prec = precision_bits
    return ctx


@dataclass(slots=True)
class Ball:
    v: Any  # Fraction (exact, real) or an mpmath mpf/mpc
    rad: Any = 0
    aerr: Any = 0

    @property
    def exact(self) -> bool:
        return isinstance(self.v, Fraction)


class Evaluator:
    def __init__(self, config: GraderConfig, env: dict[str, Ball] | None = None) -> None:
        self.config = config
        self.ctx = context(config.precision_bits)
        self.eps = self.ctx.ldexp(1, 8 - config.precision_bits)
        self.env = env or {}

    # -- conversions ---------------------------------------------------------------------------------
    def mp(self, b: Ball) -> Ball:
        if not b.exact:
            return b
        f = b.v
        if max(f.numerator.bit_length(), f.denominator.bit_length()) > 1_000_000:
            raise TooLarge
        v = self.ctx.mpf(f.numerator) / f.denominator
        return Ball(v, self.eps * abs(v), b.aerr)

    def _fits(self, f: Fraction) -> bool:
        limit = self.config.max_exact_bits
        return f.numerator.bit_length() <= limit and f.denominator.bit_length() <= limit

    def _check(self, v: Any) -> None:
        if not self.ctx.isfinite(v):
            raise DomainError
        if v != 0:
            mag = abs(v)
            if abs(self.ctx.mag(mag)) > self.config.max_exponent_bits:
                raise TooLarge

    # -- arithmetic ----------------------------------------------------------------------------------
    def add(self, a: Ball, b: Ball) -> Ball:
        if a.exact and b.exact:
            s = a.v + b.v
            if self._fits(s):
                return Ball(s, 0, a.aerr + b.aerr)
        a, b = self.mp(a), self.mp(b)
        v = a.v + b.v
        return Ball(v, a.rad + b.rad + self.eps * (abs(a.v) + abs(b.v)), a.aerr + b.aerr)

    def mul(self, a: Ball, b: Ball) -> Ball:
        if a.exact and b.exact:
            p = a.v * b.v
            if self._fits(p):
                return Ball(p, 0, abs(a.v) * b.aerr + abs(b.v) * a.aerr + a.aerr * b.aerr)
        a, b = self.mp(a), self.mp(b)
        v = a.v * b.v
        self._check(v)
        rad = abs(a.v) * b.rad + abs(b.v) * a.rad + a.rad * b.rad + self.eps * abs(v)
        return Ball(v, rad, abs(a.v) * b.aerr + abs(b.v) * a.aerr + a.aerr * b.aerr)

    def inv(self, a: Ball) -> Ball:
        if a.exact:
            if a.v == 0:
                raise DomainError
            mag = abs(a.v)
            if a.aerr and a.aerr >= mag:
                raise DomainError
            aerr = a.aerr / (mag * (mag - a.aerr)) if a.aerr else 0
            return Ball(1 / a.v, 0, aerr)
        mag = abs(a.v)
        if mag <= a.rad or (a.aerr and mag <= a.aerr):
            raise DomainError
        v = 1 / a.v
        self._check(v)
        rad = a.rad / (mag * (mag - a.rad)) + self.eps * abs(v)
        aerr = a.aerr / (mag * (mag - a.aerr)) if a.aerr else 0
        return Ball(v, rad, aerr)

    def power(self, a: Ball, b: Ball) -> Ball:
        if b.exact and b.aerr == 0 and b.v.denominator == 1:
            return self._int_power(a, int(b.v))
        if a.exact and b.exact and b.aerr == 0 and a.aerr == 0:
            root = _exact_root(a.v, b.v, self.config.max_exact_bits)
            if root is not None:
                return Ball(root)
        if b.exact and b.aerr == 0 and b.v.denominator % 2 == 1 and self._negative_real(a):
            # Odd roots of negative reals are real: (-8)^(1/3) = -2, as in school algebra.
            magnitude = self.power(Ball(-a.v if a.exact else -self.ctx.re(a.v), a.rad, a.aerr), b)
            return magnitude if b.v.numerator % 2 == 0 else Ball(-magnitude.v, magnitude.rad, magnitude.aerr)
        a, b = self.mp(a), self.mp(b)
        if a.v == 0:
            if self.ctx.re(b.v) > 0:
                return Ball(self.ctx.mpf(0), 0, 0)
            raise DomainError
        log_a = self.ctx.log(a.v)
        if abs(self.ctx.re(b.v * log_a)) > self.config.max_exponent_bits * 0.69:
            raise TooLarge
        v = self.ctx.exp(b.v * log_a)
        self._check(v)
        rad = abs(b.v * v / a.v) * a.rad + abs(v * log_a) * b.rad + self.eps * abs(v)
        aerr = abs(b.v * v / a.v) * a.aerr + abs(v * log_a) * b.aerr
        return Ball(v, rad, aerr)

    def _negative_real(self, a: Ball) -> bool:
        if a.exact:
            return a.v < 0
        return self.ctx.im(a.v) == 0 and self.ctx.re(a.v) < 0

    def _int_power(self, a: Ball, n: int) -> Ball:
        if n == 0:
            return Ball(Fraction(1))
        if a.exact:
            bits = abs(n) * max(a.v.numerator.bit_length(), a.v.denominator.bit_length())
            if bits <= self.config.max_exact_bits:
                if a.v == 0 and n < 0:
                    raise DomainError
                v = a.v**n
                aerr = abs(n) * abs(a.v) ** (n - 1) * a.aerr if a.aerr and a.v else a.aerr
                return Ball(v, 0, aerr)
        if a.v == 0:
            if n < 0:
                raise DomainError
            return Ball(Fraction(0), 0, a.aerr**n if a.aerr else 0)
        a = self.mp(a)
        if abs(self.ctx.mag(abs(a.v))) * abs(n) > self.config.max_exponent_bits:
            raise TooLarge
        v = a.v**n
        self._check(v)
        factor = abs(n) * abs(v / a.v)
        return Ball(v, factor * a.rad + self.eps * abs(v), factor * a.aerr)

    def unary(self, name: str, a: Ball) -> Ball:
        exact = _exact_unary(name, a, self.config.max_exact_bits)
        if exact is not None:
            return exact
        fn = self._mp_function(name)
        a = self.mp(a)
        if name in ("sin", "cos", "tan", "sec", "csc", "cot") and abs(a.v) > 2**100:
            raise TooLarge
        if name in ("exp", "sinh", "cosh") and abs(self.ctx.re(a.v)) > self.config.max_exponent_bits * 0.69:
            raise TooLarge
        if name in ("gamma", "factorial") and abs(a.v) > 10**12:
            raise TooLarge
        try:
            v = fn(a.v)
        except (ValueError, ZeroDivisionError) as exc:
            raise DomainError from exc
        self._check(v)
        if name == "abs":
            slope: Any = 1
        else:
            h = self.ctx.ldexp(1, -60) * max(1, abs(a.v))
            try:
                slope = abs(fn(a.v + h) - fn(a.v - h)) / (2 * h)
            except (ValueError, ZeroDivisionError):
                slope = self.ctx.inf
        return Ball(v, slope * a.rad + self.eps * abs(v), slope * a.aerr if a.aerr else 0)

    def _mp_function(self, name: str) -> Any:
        ctx = self.ctx
        table = {
            "sin": ctx.sin,
            "cos": ctx.cos,
            "tan": ctx.tan,
            "sec": ctx.sec,
            "csc": ctx.csc,
            "cot": ctx.cot,
            "asin": ctx.asin,
            "acos": ctx.acos,
            "atan": ctx.atan,
            "sinh": ctx.sinh,
            "cosh": ctx.cosh,
            "tanh": ctx.tanh,
            "exp": ctx.exp,
            "log": _nonzero(ctx.ln),
            "log10": _nonzero(ctx.log10),
            "sqrt": ctx.sqrt,
            "cbrt": ctx.cbrt,
            "abs": abs,
            "gamma": ctx.gamma,
            "factorial": ctx.factorial,
            "re": ctx.re,
            "im": ctx.im,
            "arg": ctx.arg,
            "conj": ctx.conj,
        }
        if name not in table:
            raise NotNumeric(name)
        return table[name]

    # -- tree walk -----------------------------------------------------------------------------------
    def ev(self, node: Node) -> Ball:
        timeouts.check()
        if isinstance(node, Num):
            # A decimal may be rounded or truncated: it stands for values within one unit of its last digit.
            aerr = Fraction(10) ** -node.decimals if node.decimals is not None else 0
            return Ball(node.value, 0, aerr)
        if isinstance(node, Sym):
            if node.name in self.env:
                return self.env[node.name]
            raise NotNumeric(node.name)
        if isinstance(node, Const):
            return self._const(node.name)
        if isinstance(node, Add):
            out = self.ev(node.args[0])
            for arg in node.args[1:]:
                out = self.add(out, self.ev(arg))
            return out
        if isinstance(node, Mul):
            out = self.ev(node.args[0])
            for arg in node.args[1:]:
                out = self.mul(out, self.ev(arg))
            return out
        if isinstance(node, Pow):
            base = self.ev(node.base)
            if isinstance(node.exp, Num) and node.exp.value == -1 and node.exp.decimals is None:
                return self.inv(base)
            return self.power(base, self.ev(node.exp))
        if isinstance(node, Percent):
            return self.mul(self.ev(node.x), Ball(Fraction(1, 100)))
        if isinstance(node, Degree):
            return self.mul(self.ev(node.x), self.mul(self._const("pi"), Ball(Fraction(1, 180))))
        if isinstance(node, Func):
            return self._func(node)
        raise NotNumeric(type(node).__name__)

    def _const(self, name: str) -> Ball:
        ctx = self.ctx
        if name == "pi":
            return Ball(+ctx.pi, self.eps * 4)
        if name == "e":
            return Ball(+ctx.e, self.eps * 3)
        if name == "i":
            return Ball(ctx.mpc(0, 1))
        raise NotNumeric(name)

    def _func(self, node: Func) -> Ball:
        name, args = node.name, node.args
        if name in ("sum", "prod"):
            return self._series(node)
        if name == "root" and len(args) == 2:
            index = self.ev(args[1])
            return self.power(self.ev(args[0]), self.inv(index))
        if name == "logb" and len(args) == 2:
            return self.mul(self.unary("log", self.ev(args[0])), self.inv(self.unary("log", self.ev(args[1]))))
        if name == "binom" and len(args) == 2:
            return self._binom(self.ev(args[0]), self.ev(args[1]))
        if name in ("gcd", "lcm", "max", "min"):
            return self._lattice(name, [self.ev(a) for a in args])
        if len(args) != 1:
            raise NotNumeric(name)
        a = self.ev(args[0])
        if name == "factorial":
            return self._factorial(a)
        if name in ("floor", "ceil"):
            return self._round(name, a)
        return self.unary(name, a)

    def _factorial(self, a: Ball) -> Ball:
        if a.exact and a.aerr == 0 and a.v.denominator == 1:
            n = int(a.v)
            if n < 0:
                raise DomainError
            if n * max(1, n.bit_length()) <= self.config.max_exact_bits:
                return Ball(Fraction(math.factorial(n)))
        return self.unary("gamma", self.add(a, Ball(Fraction(1))))

    def _binom(self, n: Ball, k: Ball) -> Ball:
        if n.exact and k.exact and n.v.denominator == 1 and k.v.denominator == 1:
            nn, kk = int(n.v), int(k.v)
            if 0 <= kk and nn >= 0 and min(kk, nn - kk) * max(1, nn.bit_length()) <= self.config.max_exact_bits:
                return Ball(Fraction(math.comb(nn, kk)))
        num = self._factorial(n)
        den = self.mul(self._factorial(k), self._factorial(self.add(n, Ball(-k.v if k.exact else -k.v))))
        return self.mul(num, self.inv(den))

    def _lattice(self, name: str, values: list[Ball]) -> Ball:
        if not values or not all(v.exact and v.aerr == 0 for v in values):
            raise NotNumeric(name)
        if name in ("max", "min"):
            return Ball((max if name == "max" else min)(v.v for v in values))
        if not all(v.v.denominator == 1 for v in values):
            raise NotNumeric(name)
        ints = [int(v.v) for v in values]
        return Ball(Fraction(math.gcd(*ints) if name == "gcd" else math.lcm(*ints)))

    def _round(self, name: str, a: Ball) -> Ball:
        if a.exact:
            return Ball(Fraction(math.floor(a.v) if name == "floor" else math.ceil(a.v)))
        if self.ctx.im(a.v) != 0:
            raise NotNumeric(name)
        x = self.ctx.re(a.v)
        r = self.ctx.floor(x) if name == "floor" else self.ctx.ceil(x)
        if abs(x - r) <= a.rad or abs(x - r - (1 if name == "floor" else -1)) <= a.rad:
            raise NotNumeric("floor of a value too close to an integer")
        return Ball(Fraction(int(r)))

    def _series(self, node: Func) -> Ball:
        var, lo_node, hi_node, body = node.args
        if not isinstance(var, Sym):
            raise NotNumeric("series variable")
        lo, hi = self.ev(lo_node), self.ev(hi_node)
        if not (lo.exact and hi.exact and lo.v.denominator == 1 and hi.v.denominator == 1):
            raise NotNumeric("series bounds")
        start, stop = int(lo.v), int(hi.v)
        if stop - start + 1 > self.config.max_series_terms:
            raise TooLarge
        total = Ball(Fraction(0 if node.name == "sum" else 1))
        saved = self.env.get(var.name)
        try:
            for k in range(start, stop + 1):
                self.env[var.name] = Ball(Fraction(k))
                term = self.ev(body)
                total = self.add(total, term) if node.name == "sum" else self.mul(total, term)
        finally:
            if saved is None:
                self.env.pop(var.name, None)
            else:
                self.env[var.name] = saved
        return total


def _nonzero(fn: Any) -> Any:
    def wrapped(x: Any) -> Any:
        if x == 0:
            raise ValueError("log of zero")
        return fn(x)

    return wrapped


def _integer_root(n: int, k: int) -> int | None:
    if n < 0:
        return None
    if n < 2:
        return n
    r = round(n ** (1.0 / k)) if n.bit_length() < 1000 else _iroot(n, k)
    for c in (r - 1, r, r + 1):
        if c >= 0 and c**k == n:
            return c
    return None


def _iroot(n: int, k: int) -> int:
    lo, hi = 0, 1 << (n.bit_length() // k + 1)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if mid**k <= n:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _exact_root(a: Fraction, b: Fraction, max_bits: int) -> Fraction | None:
    """a**b when it is rational: (9/4)**(1/2) = 3/2, 8**(2/3) = 4."""
    if a < 0 or b.denominator > 64:
        return None
    q = b.denominator
    num, den = _integer_root(a.numerator, q), _integer_root(a.denominator, q)
    if num is None or den is None:
        return None
    base = Fraction(num, den)
    if base == 0 and b < 0:
        return None
    if abs(b.numerator) * max(base.numerator.bit_length(), base.denominator.bit_length()) > max_bits:
        return None
    return base**b.numerator


def _exact_unary(name: str, a: Ball, max_bits: int) -> Ball | None:
    if not a.exact or a.aerr:
        return None
    v = a.v
    if name == "sqrt":
        root = _exact_root(v, Fraction(1, 2), max_bits)
        return Ball(root) if root is not None else None
    if name == "cbrt":
        sign = -1 if v < 0 else 1
        root = _exact_root(abs(v), Fraction(1, 3), max_bits)
        return Ball(sign * root) if root is not None else None
    if name == "abs":
        return Ball(abs(v))
    if v == 0 and name in ("sin", "tan", "asin", "atan", "sinh", "tanh"):
        return Ball(Fraction(0))
    if v == 0 and name in ("cos", "exp", "cosh", "sec"):
        return Ball(Fraction(1))
    if v == 1 and name in ("log",):
        return Ball(Fraction(0))
    if name in ("re", "conj"):
        return Ball(v)
    if name == "im":
        return Ball(Fraction(0))
    return None


def to_mpf(ctx: Any, x: Any) -> Any:
    if isinstance(x, Fraction):
        return ctx.mpf(x.numerator) / x.denominator
    return ctx.mpf(x) if isinstance(x, int) else x


def match(a: Ball, b: Ball, ev: Evaluator) -> str:
    """ "exact" if a and b are the same number, "rounded" if they agree to the decimals shown, else ""."""
    cfg = ev.config
    if a.exact and b.exact:
        if a.v == b.v:
            return "exact"
        if not (a.aerr or b.aerr):
            return ""
    ctx = ev.ctx
    am, bm = ev.mp(a), ev.mp(b)
    diff = abs(am.v - bm.v)
    rad = to_mpf(ctx, am.rad) + to_mpf(ctx, bm.rad)
    if not (a.exact and b.exact) and diff <= rad:
        return "exact"
    aerr = to_mpf(ctx, a.aerr) + to_mpf(ctx, b.aerr)
    if not aerr:
        return ""
    magnitude = max(abs(am.v), abs(bm.v))
    if aerr > cfg.min_relative_precision * magnitude:
        return ""
    return "rounded" if diff <= aerr + rad + cfg.float_noise * magnitude else ""


def is_real(b: Ball, ctx: Any) -> bool:
    if b.exact:
        return True
    return abs(ctx.im(b.v)) <= to_mpf(ctx, b.rad)
