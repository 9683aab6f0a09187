"""Parse a cleaned answer (LaTeX or Python-tool output) into `nodes`.

A recursive-descent parser over one token list, precedence from loose to tight:
list (`,` `;` and/or) > relation (= ≈ < ≤ ∈ ...) > set operation (∪) > ratio (:) > sum (+ - ±) >
product (* / · × and juxtaposition) > sign > power (^ **) > postfix (! _ % ° ') > atom.
Anything it does not understand raises `ParseError`; the caller then compares the texts.
"""

from __future__ import annotations

import re
from fractions import Fraction

from tir_harness.grading import timeouts
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
    neg,
)


class ParseError(ValueError):
    pass


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
   |(?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+(?![a-zA-Z]))?)
   |(?P<begin>\\begin\s*\{\s*(?P<benv>[a-zA-Z*]+)\s*\})
   |(?P<end>\\end\s*\{\s*(?P<eenv>[a-zA-Z*]+)\s*\})
   |(?P<op>\*\*|<=|>=|!=|==|=>|\\\\|[-+*/^_!'=<>()\[\]{}|,;:&%°])
   |(?P<cmd>\\(?:[a-zA-Z]+|[{}|#&]))
   |(?P<id>[a-zA-Z]+)
   |(?P<dot>\.)
    """,
    re.VERBOSE,
)

Token = tuple[str, str]

RELATIONS = {
    "=": "=",
    "==": "=",
    "<": "<",
    ">": ">",
    "<=": "<=",
    ">=": ">=",
    "!=": "!=",
    "\\le": "<=",
    "\\leq": "<=",
    "\\leqslant": "<=",
    "\\ge": ">=",
    "\\geq": ">=",
    "\\geqslant": ">=",
    "\\lt": "<",
    "\\gt": ">",
    "\\ne": "!=",
    "\\neq": "!=",
    "\\approx": "~",
    "\\simeq": "~",
    "\\equiv": "=",
    "\\in": "in",
    "\\Rightarrow": "=>",
    "\\implies": "=>",
    "\\to": "=>",
    "\\rightarrow": "=>",
    "=>": "=>",
}
SEPARATOR_WORDS = {"and", "or", "und", "et", "oder"}
# LaTeX commands and Python names of functions of one argument, by canonical name.
FUNCTIONS = {
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "sec": "sec",
    "csc": "csc",
    "cot": "cot",
    "cosec": "csc",
    "arcsin": "asin",
    "arccos": "acos",
    "arctan": "atan",
    "asin": "asin",
    "acos": "acos",
    "atan": "atan",
    "sinh": "sinh",
    "cosh": "cosh",
    "tanh": "tanh",
    "exp": "exp",
    "ln": "log",
    "log": "log",
    "lg": "log10",
    "sqrt": "sqrt",
    "cbrt": "cbrt",
    "abs": "abs",
    "Abs": "abs",
    "floor": "floor",
    "ceil": "ceil",
    "ceiling": "ceil",
    "factorial": "factorial",
    "gamma": "gamma",
    "det": "det",
    "re": "re",
    "im": "im",
    "arg": "arg",
    "conjugate": "conj",
}
MULTI_ARG = {
    "gcd": "gcd",
    "lcm": "lcm",
    "max": "max",
    "min": "min",
    "binomial": "binom",
    "binom": "binom",
    "root": "root",
    "Rational": "rational",
    "Integer": "id",
    "Float": "id",
    "Matrix": "matrix",
    "Interval": "interval",
    "IntervalOpen": "interval_open",
    "IntervalRopen": "interval_ropen",
    "IntervalLopen": "interval_lopen",
    "FiniteSet": "finiteset",
    "Union": "union",
    "array": "id",
    "Eq": "eq",
    "Tuple": "tuple",
    "sympify": "id",
    "float": "id",
    "int": "id",
}
FUNCTION_LETTERS = set("fghFGHPQWpq")
GREEK = {
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "vartheta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "varphi",
    "chi",
    "psi",
    "omega",
    "Gamma",
    "Delta",
    "Theta",
    "Lambda",
    "Xi",
    "Sigma",
    "Phi",
    "Psi",
    "Omega",
    "Pi",
    "ell",
    "angle",
    "triangle",
    "measuredangle",
}
MATRIX_ENVS = {"pmatrix", "bmatrix", "Bmatrix", "vmatrix", "Vmatrix", "matrix", "smallmatrix", "array"}
DECORATIONS = {
    "overline",
    "bar",
    "vec",
    "hat",
    "widehat",
    "tilde",
    "overrightarrow",
    "overleftrightarrow",
    "underline",
    "dot",
    "ddot",
    "mathbf",
    "boldsymbol",
}


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ParseError(f"unexpected character {text[pos]!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind == "benv" or kind == "eenv":
            kind = "begin" if match.group("begin") else "end"
        if kind == "begin":
            tokens.append(("begin", match.group("benv")))
        elif kind == "end":
            tokens.append(("end", match.group("eenv")))
        elif kind == "dot":
            tokens.append(("op", "."))
        elif kind != "ws":
            tokens.append((kind, match.group(0)))
        pos = match.end()
    return tokens


def parse(text: str, *, max_depth: int = 40) -> Node:
    tokens = tokenize(text)
    if not tokens:
        raise ParseError("empty answer")
    pythonic = "\\" not in text and bool(re.search(r"\*|[a-zA-Z]{2,}\(|\bI\b", text))
    return _Parser(tokens, pythonic, max_depth).parse()


class _Parser:
    def __init__(self, tokens: list[Token], pythonic: bool, max_depth: int) -> None:
        self.tokens = tokens
        self.pos = 0
        self.pythonic = pythonic
        self.max_depth = max_depth
        self.depth = 0
        self.abs_depth = 0

    # -- token helpers -------------------------------------------------------------------------------
    def peek(self, k: int = 0) -> Token | None:
        i = self.pos + k
        return self.tokens[i] if i < len(self.tokens) else None

    def next(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise ParseError("unexpected end")
        self.pos += 1
        return tok

    def at(self, kind: str, *values: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == kind and (not values or tok[1] in values)

    def at_op(self, *values: str) -> bool:
        return self.at("op", *values)

    def expect_op(self, value: str) -> None:
        if not self.at_op(value):
            raise ParseError(f"expected {value!r}")
        self.pos += 1

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise ParseError("nested too deeply")
        timeouts.check()

    # -- grammar -------------------------------------------------------------------------------------
    def parse(self) -> Node:
        items = self.parse_items(closers=())
        if self.peek() is not None:
            raise ParseError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return _collect(items, "list")

    def at_separator(self) -> str | None:
        tok = self.peek()
        if tok is None:
            return None
        if tok[0] == "op" and tok[1] in (",", ";"):
            return tok[1]
        if tok[0] == "id" and tok[1].lower() in SEPARATOR_WORDS:
            return "and"
        return None

    def parse_items(self, closers: tuple[str, ...]) -> list[tuple[str, Node]]:
        """Items with the separator that preceded each ("" for the first)."""
        items: list[tuple[str, Node]] = []
        sep = ""
        while True:
            tok = self.peek()
            if tok is None or (tok[0] in ("op", "cmd", "end") and tok[1] in closers):
                return items
            found = self.at_separator()
            if found is not None:
                self.pos += 1
                sep = found
                continue
            items.append((sep, self.parse_relation()))
            sep = ","
            if (
                self.peek() is not None
                and self.at_separator() is None
                and not (
                    self.peek()[0] in ("op", "cmd", "end") and self.peek()[1] in closers  # type: ignore[index]
                )
            ):
                raise ParseError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]

    def parse_relation(self) -> Node:
        self.enter()
        parts = [self.parse_setexpr()]
        ops: list[str] = []
        while True:
            tok = self.peek()
            if tok is None:
                break
            rel = RELATIONS.get(tok[1]) if tok[0] in ("op", "cmd") else None
            if rel is None:
                break
            self.pos += 1
            ops.append(rel)
            parts.append(self.parse_setexpr())
        self.depth -= 1
        if not ops:
            return parts[0]
        if "=>" in ops:  # `a = b \Rightarrow c = d`: the conclusion is what counts
            last = len(ops) - 1 - ops[::-1].index("=>")
            return _relation(parts[last + 1 :], ops[last + 1 :])
        return _relation(parts, ops)

    def parse_setexpr(self) -> Node:
        left = self.parse_ratio()
        parts = [left]
        while self.at("cmd", "\\cup") or (self.at("id", "U") and isinstance(parts[-1], (Interval, Seq))):
            self.pos += 1
            parts.append(self.parse_ratio())
        while self.at("cmd", "\\cap", "\\setminus", "\\backslash"):
            op = self.next()[1][1:]
            right = self.parse_ratio()
            parts = [Func(op, (_union(parts), right))]
        return _union(parts)

    def parse_ratio(self) -> Node:
        parts = [self.parse_sum()]
        while self.at_op(":"):
            self.pos += 1
            parts.append(self.parse_sum())
        return parts[0] if len(parts) == 1 else Seq("ratio", tuple(parts))

    def parse_sum(self) -> Node:
        self.enter()
        terms: list[Node] = [self.parse_term()]
        while True:
            if self.at_op("+"):
                self.pos += 1
                terms.append(self.parse_term())
            elif self.at_op("-"):
                self.pos += 1
                terms.append(neg(self.parse_term()))
            elif self.at("cmd", "\\pm", "\\mp"):
                self.pos += 1
                left = _add(terms)
                terms = [PM(left, self.parse_term())]
            else:
                break
        self.depth -= 1
        return _add(terms)

    def parse_term(self) -> Node:
        factors: list[Node] = [self.parse_signed()]
        while True:
            tok = self.peek()
            if tok is None:
                break
            if tok in (("op", "*"), ("cmd", "\\cdot"), ("cmd", "\\times"), ("cmd", "\\ast")):
                self.pos += 1
                factors.append(self.parse_signed())
            elif tok in (("op", "/"), ("cmd", "\\div")):
                self.pos += 1
                factors.append(Pow(self.parse_signed(), NEG_ONE))
            elif self.starts_atom(implicit=True):
                factor = self.parse_power()
                mixed = _mixed_number(factors, factor)
                if mixed is not None:
                    factors[-1] = mixed
                else:
                    factors.append(factor)
            else:
                break
        return _mul(factors)

    def starts_atom(self, implicit: bool = False) -> bool:
        tok = self.peek()
        if tok is None:
            return False
        kind, value = tok
        if kind == "num":
            return True
        if kind == "id":
            return value.lower() not in SEPARATOR_WORDS and not (value == "U" and implicit)
        if kind == "begin":
            return True
        if kind == "cmd":
            return value not in RELATIONS and value not in (
                "\\cdot",
                "\\times",
                "\\div",
                "\\pm",
                "\\mp",
                "\\cup",
                "\\cap",
                "\\setminus",
                "\\}",
                "\\ast",
                "\\rfloor",
                "\\rceil",
                "\\backslash",
            )
        if kind == "op":
            if value in ("(", "{"):
                return True
            if value == "|":
                return self.abs_depth == 0
            if value == "[" and not implicit:
                return True
        return False

    def parse_signed(self) -> Node:
        if self.at_op("-"):
            self.pos += 1
            return neg(self.parse_signed())
        if self.at_op("+"):
            self.pos += 1
            return self.parse_signed()
        if self.at("cmd", "\\pm", "\\mp"):
            self.pos += 1
            return PM(None, self.parse_signed())
        return self.parse_power()

    def parse_power(self) -> Node:
        self.enter()
        base = self.parse_postfix()
        if self.at_op("^", "**"):
            op = self.next()[1]
            exponent = self.parse_signed() if op == "**" else self.parse_exponent()
            base = self.parse_postfix_ops(Pow(base, exponent))
        self.depth -= 1
        return base

    def parse_exponent(self) -> Node:
        if self.at_op("-"):
            self.pos += 1
            return neg(self.parse_exponent())
        if self.at("id"):
            return self.single_letter()
        return self.parse_postfix()

    def parse_postfix(self) -> Node:
        return self.parse_postfix_ops(self.parse_atom())

    def parse_postfix_ops(self, node: Node) -> Node:
        while True:
            if self.at_op("!"):
                self.pos += 1
                node = Func("factorial", (node,))
            elif self.at_op("%"):
                self.pos += 1
                node = Percent(node)
            elif self.at_op("°"):
                self.pos += 1
                node = Degree(node)
            elif self.at_op("'"):
                self.pos += 1
                node = Sym(node.name + "'") if isinstance(node, Sym) else Func("prime", (node,))
            elif self.at_op("_"):
                self.pos += 1
                node = self.subscripted(node)
            elif self.at("cmd", "\\overline") and isinstance(node, Num) and "." in self.tokens[self.pos - 1][1]:
                self.pos += 1
                node = _repeating(node, self.raw_group())
            else:
                return node

    def subscripted(self, node: Node) -> Node:
        if self.at_op("{"):
            start = self.pos
            raw = self.raw_group()
            simple = re.fullmatch(r"[A-Za-z0-9]+", raw.replace(" ", ""))
            if not simple:
                self.pos = start + 1
                index = _collect(self.parse_items(closers=("}",)), "tuple")
                self.expect_op("}")
        else:
            tok = self.next()
            if tok[0] not in ("num", "id"):
                raise ParseError("bad subscript")
            raw, simple, index = tok[1], True, None  # type: ignore[assignment]
        if isinstance(node, Num) and node.decimals is None and simple:
            return Text(f"{node.value}_{raw.replace(' ', '')}")  # a number in base `raw`
        if isinstance(node, Sym):
            if simple:
                return Sym(f"{node.name}_{raw.replace(' ', '')}")
            return Func("index:" + node.name, (index,))
        return Func("index", (node, Sym(raw) if simple else index))

    def raw_group(self) -> str:
        """The source text of a `{...}` group, consumed."""
        self.expect_op("{")
        depth, parts = 1, []
        while True:
            tok = self.next()
            if tok == ("op", "{"):
                depth += 1
            elif tok == ("op", "}"):
                depth -= 1
                if depth == 0:
                    return " ".join(parts)
            parts.append(tok[1])

    def single_letter(self) -> Node:
        """Take one letter of an identifier run (`e^x y` -> exponent x); push back the rest."""
        kind, value = self.next()
        if len(value) > 1 and value not in FUNCTIONS and value not in ("pi", "oo", "inf"):
            self.tokens.insert(self.pos, ("id", value[1:]))
            value = value[0]
        return self.identifier(value)

    def read_arg(self) -> Node:
        """A LaTeX macro argument: `{...}` or a single character/command (`\\frac12`, `\\sqrt3`)."""
        if self.at_op("{"):
            self.pos += 1
            node = _collect(self.parse_items(closers=("}",)), "list")
            self.expect_op("}")
            return node
        tok = self.peek()
        if tok is None:
            raise ParseError("missing argument")
        if tok[0] == "num" and len(tok[1]) > 1:
            self.tokens[self.pos] = ("num", tok[1][1:])
            return _number(tok[1][0])
        if tok[0] == "id":
            return self.single_letter()
        if tok[0] == "cmd":
            return self.parse_atom()
        if tok[0] == "num":
            self.pos += 1
            return _number(tok[1])
        raise ParseError("bad argument")

    def parse_atom(self) -> Node:
        self.enter()
        try:
            return self._atom()
        finally:
            self.depth -= 1

    def _atom(self) -> Node:
        kind, value = self.next()
        if kind == "num":
            return _number(value)
        if kind == "id":
            return self.word(value)
        if kind == "cmd":
            return self.command(value)
        if kind == "begin":
            return self.environment(value)
        if value == "(":
            return self.bracketed("(")
        if value == "[":
            return self.bracketed("[")
        if value == "{":
            node = _collect(self.parse_items(closers=("}",)), "list")
            self.expect_op("}")
            return node
        if value == "|":
            self.abs_depth += 1
            inner = self.parse_sum()
            self.abs_depth -= 1
            self.expect_op("|")
            return Func("abs", (inner,))
        raise ParseError(f"unexpected {value!r}")

    def bracketed(self, opener: str) -> Node:
        items = self.parse_items(closers=(")", "]"))
        closer = self.next()[1]
        nodes = tuple(node for _, node in items)
        if not nodes:
            if opener == "[" and closer == "]":
                return Seq("bracket", ())
            raise ParseError("empty brackets")
        if opener == "(" and closer == ")":
            if len(nodes) == 1 and len(items) == 1 and not self.pythonic_trailing_comma():
                return nodes[0]
            return _collect(items, "tuple")
        if opener == "[" and closer == "]":
            if len(nodes) == 1 and isinstance(nodes[0], Matrix):
                return nodes[0]  # \left[\begin{array}...\end{array}\right]
            return _collect(items, "bracket", always=True)
        if len(nodes) != 2:
            raise ParseError("interval needs two endpoints")
        return Interval(nodes[0], nodes[1], opener == "[", closer == "]")

    def pythonic_trailing_comma(self) -> bool:
        return self.tokens[self.pos - 2] == ("op", ",")

    def word(self, value: str) -> Node:
        if value in FUNCTIONS or value in MULTI_ARG:
            if self.at_op("("):
                return self.call(value)
            if value in FUNCTIONS and not self.pythonic:
                return self.function(FUNCTIONS[value])
        if value in ("pi", "oo", "inf", "infinity", "infty"):
            return Const("pi") if value == "pi" else Const("inf")
        if value in ("True", "False", "true", "false", "nan", "zoo", "None"):
            return Text(value.lower())
        if len(value) > 1:
            if len(value) >= 3 and not value.isupper():
                raise ParseError(f"word {value!r}")  # prose, not a product of variables
            # Juxtaposed letters multiply (`xy`, `AB`, point names `ABCD`); push the rest back.
            self.tokens.insert(self.pos, ("id", value[1:]))
            value = value[0]
        return self.identifier(value)

    def identifier(self, letter: str) -> Node:
        if letter in ("pi", "oo", "inf"):
            return Const("pi") if letter == "pi" else Const("inf")
        if letter in FUNCTIONS:
            return self.function(FUNCTIONS[letter])
        if letter == "e" or (letter == "E" and self.pythonic):
            return Const("e")
        if letter == "i" or (letter == "I" and self.pythonic):
            return Const("i")
        if letter in FUNCTION_LETTERS and self.at_op("(") and not self.pythonic:
            self.pos += 1
            args = tuple(node for _, node in self.parse_items(closers=(")",)))
            self.expect_op(")")
            return Func("apply:" + letter, args)
        return Sym(letter)

    def call(self, name: str) -> Node:
        self.expect_op("(")
        args = tuple(node for _, node in self.parse_items(closers=(")",)))
        self.expect_op(")")
        return _python_call(name, args)

    def function(self, name: str) -> Node:
        base: Node | None = None
        power: Node | None = None
        if self.at_op("_"):
            self.pos += 1
            base = self.read_arg()
        if self.at_op("^"):
            self.pos += 1
            power = self.parse_exponent()
        if power is not None and power == NEG_ONE and name in ("sin", "cos", "tan"):
            name, power = "a" + name, None
        if self.at_op("("):
            self.pos += 1
            arg = _collect(self.parse_items(closers=(")",)), "tuple")
            self.expect_op(")")
        elif self.at_op("{"):
            arg = self.read_arg()
        else:
            factors = [self.parse_power()]
            while self.starts_atom(implicit=True) and not self._at_function():
                factors.append(self.parse_power())
            arg = _mul(factors)
        if name == "log" and base is not None:
            node: Node = Func("logb", (arg, base))
        elif name == "sqrt":
            node = Func("sqrt", (arg,))
        else:
            node = Func(name, (arg,))
        return node if power is None else Pow(node, power)

    def _at_function(self) -> bool:
        tok = self.peek()
        if tok is None:
            return False
        if tok[0] == "cmd":
            return tok[1][1:] in FUNCTIONS
        return tok[0] == "id" and tok[1] in FUNCTIONS

    def command(self, value: str) -> Node:
        name = value[1:]
        if name == "frac":
            num = self.read_arg()
            den = self.read_arg()
            return Mul((num, Pow(den, NEG_ONE)))
        if name == "sqrt":
            if self.at_op("["):
                self.pos += 1
                index = self.parse_sum()
                self.expect_op("]")
                return Func("root", (self.read_arg(), index))
            return Func("sqrt", (self.read_arg(),))
        if name == "binom":
            return Func("binom", (self.read_arg(), self.read_arg()))
        if name in FUNCTIONS:
            return self.function(FUNCTIONS[name])
        if name in ("gcd", "lcm", "max", "min") and self.at_op("("):
            return self.call(name)
        if name == "pi":
            return Const("pi")
        if name in ("infty", "infin"):
            return Const("inf")
        if name in ("imath", "jmath"):
            return Const("i")
        if name == "{":
            items = self.parse_items(closers=("\\}",))
            if not self.at("cmd", "\\}"):
                raise ParseError("unclosed set")
            self.pos += 1
            return Seq("set", tuple(node for _, node in items))
        if name in ("lfloor", "lceil"):
            inner = self.parse_sum()
            closer = "\\rfloor" if name == "lfloor" else "\\rceil"
            if not self.at("cmd", closer):
                raise ParseError("unclosed floor/ceil")
            self.pos += 1
            return Func("floor" if name == "lfloor" else "ceil", (inner,))
        if name in ("sum", "prod"):
            return self.big_operator(name)
        if name == "mathbb":
            letter = self.raw_group() if self.at_op("{") else self.next()[1]
            if letter.strip() == "R":
                return Interval(neg(Const("inf")), Const("inf"), False, False)
            return Text("mathbb " + letter.strip())
        if name in DECORATIONS:
            return Sym(f"{name}:{self.raw_group() if self.at_op('{') else self.next()[1]}")
        if name in ("emptyset", "varnothing"):
            return Seq("set", ())
        if name in ("int", "iint", "oint", "lim", "partial", "nabla", "text", "begin", "end"):
            raise ParseError(f"unsupported \\{name}")
        if name in GREEK or name.isalpha():
            return Sym(name)  # unknown commands name something (`\zzz`); they compare by name only
        raise ParseError(f"unexpected {value}")

    def cases(self) -> Node:
        """A system `\\begin{cases} a+b=1 \\\\ a-b=2 \\end{cases}`: a list of its rows."""
        rows: list[Node] = []
        while not self.at("end"):
            if self.at_op("\\\\", "&", ","):
                self.pos += 1
                continue
            rows.append(self.parse_relation())
        self.pos += 1
        if not rows:
            raise ParseError("empty cases")
        return Seq("list", tuple(rows))

    def big_operator(self, name: str) -> Node:
        var: Node = Sym("?")
        lo: Node = Sym("?")
        hi: Node = Sym("?")
        if self.at_op("_"):
            self.pos += 1
            sub = self.read_arg()
            if isinstance(sub, Rel) and len(sub.parts) == 2 and sub.ops == ("=",):
                var, lo = sub.parts
            else:
                var = sub
        if self.at_op("^"):
            self.pos += 1
            hi = self.parse_exponent()
        body = self.parse_term()
        return Func(name, (var, lo, hi, body))

    def environment(self, env: str) -> Node:
        if env == "cases":
            return self.cases()
        if env not in MATRIX_ENVS:
            raise ParseError(f"unsupported environment {env}")
        if env == "array" and self.at_op("{"):
            self.raw_group()  # column spec
        rows: list[tuple[Node, ...]] = []
        row: list[Node] = []
        while True:
            if self.at("end"):
                self.pos += 1
                break
            if self.at_op("\\\\"):
                self.pos += 1
                rows.append(tuple(row))
                row = []
                continue
            if self.at_op("&"):
                self.pos += 1
                continue
            row.append(self.parse_relation())
        if row:
            rows.append(tuple(row))
        rows = [r for r in rows if r]
        if not rows or len({len(r) for r in rows}) != 1:
            raise ParseError("ragged matrix")
        return Matrix(tuple(rows))


# -- node builders ----------------------------------------------------------------------------------------


def _number(text: str) -> Num:
    if len(text) > 1000:
        raise ParseError("number too long")
    mantissa, _, exponent = text.lower().partition("e")
    value = Fraction(mantissa) if mantissa != "." else Fraction(0)
    exp = int(exponent) if exponent else 0
    if abs(exp) > 10_000:
        raise ParseError("exponent too large")
    if exp:
        value *= Fraction(10) ** exp
    whole, dot, frac = mantissa.partition(".")
    if not dot or (not frac and not exponent):
        return Num(value, None if not exponent else -exp)
    return Num(value, len(frac) - exp)


def _repeating(num: Num, digits: str) -> Num:
    digits = digits.replace(" ", "")
    if not digits.isdigit():
        raise ParseError("bad repeating decimal")
    shift = Fraction(10) ** (num.decimals or 0)
    repeat = Fraction(int(digits), (10 ** len(digits) - 1)) / shift
    return Num(num.value + (repeat if num.value >= 0 else -repeat), None)


def _add(terms: list[Node]) -> Node:
    return terms[0] if len(terms) == 1 else Add(tuple(terms))


def _mul(factors: list[Node]) -> Node:
    return factors[0] if len(factors) == 1 else Mul(tuple(factors))


def _union(parts: list[Node]) -> Node:
    return parts[0] if len(parts) == 1 else Union(tuple(parts))


def _relation(parts: list[Node], ops: list[str]) -> Node:
    return parts[0] if not ops else Rel(tuple(parts), tuple(ops))


def _is_int(node: Node) -> bool:
    return isinstance(node, Num) and node.decimals is None and node.value.denominator == 1


def _is_int_fraction(node: Node) -> bool:
    if not (isinstance(node, Mul) and len(node.args) == 2):
        return False
    num, den = node.args
    return (
        _is_int(num)
        and num.value >= 0  # type: ignore[union-attr]
        and isinstance(den, Pow)
        and den.exp == NEG_ONE
        and _is_int(den.base)
    )


def _mixed_number(factors: list[Node], new: Node) -> Node | None:
    """`918\\frac12` is 918 + 1/2 (a mixed number), not 918 * 1/2."""
    if len(factors) != 1 or not _is_int_fraction(new):
        return None
    whole = factors[0]
    if not (isinstance(whole, Num) and whole.decimals is None and whole.value.denominator == 1):
        return None
    if whole.value < 0:
        return neg(Add((Num(-whole.value), new)))
    return Add((whole, new))


def _collect(items: list[tuple[str, Node]], kind: str, always: bool = False) -> Node:
    """Items of a list; `;` groups `,`-separated runs (`p=5,q=2;p=7,q=2` is two pairs)."""
    nodes = [node for _, node in items]
    if not nodes:
        raise ParseError("empty list")
    if len(nodes) == 1 and not always:
        return nodes[0]
    seps = {sep for sep, _ in items[1:]}
    if ";" in seps and "," in seps:
        groups: list[list[Node]] = [[]]
        for sep, node in items:
            if sep == ";":
                groups.append([])
            groups[-1].append(node)
        grouped = tuple(g[0] if len(g) == 1 else Seq("tuple", tuple(g)) for g in groups)
        return Seq(kind if kind != "list" else "list", grouped)
    return Seq(kind, tuple(nodes))


def _python_call(name: str, args: tuple[Node, ...]) -> Node:
    if name in FUNCTIONS:
        if len(args) == 1:
            return Func(FUNCTIONS[name], args)
        if name == "log" and len(args) == 2:
            return Func("logb", args)
        raise ParseError(f"{name} takes one argument")
    canon = MULTI_ARG[name]
    if canon == "rational" and len(args) == 2:
        return Mul((args[0], Pow(args[1], NEG_ONE)))
    if canon == "id" and len(args) == 1:
        return args[0]
    if canon == "matrix" and len(args) == 1 and isinstance(args[0], Seq):
        rows = [r.items if isinstance(r, Seq) else (r,) for r in args[0].items]
        if isinstance(args[0].items[0], Seq):
            return Matrix(tuple(tuple(r) for r in rows))
        return Matrix(tuple((r[0],) for r in rows))
    if canon.startswith("interval") and len(args) == 2:
        lo_closed = canon in ("interval", "interval_ropen")
        hi_closed = canon in ("interval", "interval_lopen")
        return Interval(args[0], args[1], lo_closed, hi_closed)
    if canon == "finiteset":
        return Seq("set", args)
    if canon == "union":
        return Union(args)
    if canon == "tuple":
        return Seq("tuple", args)
    if canon == "eq" and len(args) == 2:
        return Rel(args, ("=",))
    if canon in ("gcd", "lcm", "max", "min", "binom", "root"):
        return Func(canon, args)
    raise ParseError(f"unsupported call {name}")
