"""The reference implementation's verdict, reproduced beside the harness's own (docs/fidelity.md).

The reference graded with ToRA's `extract_answer` and `math_equal`: the text after the format's last header
(the model's for Gemma, Mistral and DeepSeek; for Llama 3 the last *user* header, so at the tool-call limit it
reads the last ```output block), its last `boxed`, else what follows "he answer is", else the last ```output
block, else the last number; the prediction normalised by ToRA's `strip_string` twice, the gold three times
(MATH) or twice (other datasets); then numbers within a relative 1e-4 (a gold x also accepts x/100 and 100x),
the same string up to brackets, tuples item by item, and sympy: `simplify(a - b) == 0` or numeric values
within a relative 1e-3, with LaTeX read by sympy's antlr parser on antlr4-python3-runtime 4.11 (shipped in
`_vendor/antlr411`, loaded only by the sympy helpers).  Those rules accept some wrong answers; the verdict is
reported next to the harness's, never instead of it.

Bounded and thread-safe: everything but sympy runs in the caller's thread on bounded input; the sympy step
runs in a small pool of helper processes (one per core, at most four), each killed and replaced when a
comparison exceeds the record's time budget (the reference's own 10 s) or its memory limit; a verdict that ran
out of time is "not equal" and says so (`timed_out`), as the reference's evaluation counted its timeouts.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import math
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "REFERENCE_GRADER_VERSION",
    "ReferenceVerdict",
    "extract_reference_answer",
    "latex_backend",
    "math_equal",
    "reference_gold",
    "reference_grade",
    "reference_verdict",
    "strip_string",
    "text_after_model_header",
]

# Bump whenever a reference verdict may change: stored records are graded again only when it differs.
REFERENCE_GRADER_VERSION = "2"

MAX_TEXT_CHARS = 50_000  # the response tail that is searched (a turn is at most max_tokens long)
MAX_SYMBOLIC_CHARS = 400  # longer answers skip sympy (the reference would try; none of ours is that long)
REFERENCE_TIMEOUT_S = 10.0  # per record, as the reference's evaluate (pebble, timeout=10); helper time only
MAX_HELPERS = 4
_WORKER_START_TIMEOUT_S = 60.0
_SPARE_HELPER_WAIT_S = 0.25  # a caller waits this long for a busy helper before another one is started
_VENDOR = Path(__file__).resolve().parent / "_vendor" / "antlr411"

# The reference cut the conversation at the last of its format's header (`prompt.split(ans_split)[-1]`).
REFERENCE_SPLITS = {
    "gemma": "<start_of_turn>model\n",
    "mistral": "[/INST]",
    "deepseek": "\n\nAssistant:",
    "llama3": "<|start_header_id|>user<|end_header_id|>\n\n",
}
# For conversations of other formats: the last model message.
MODEL_HEADERS = (
    "<start_of_turn>model\n",
    "[/INST]",
    "\n\nAssistant:",
    "<|start_header_id|>assistant<|end_header_id|>",
)
# Datasets whose gold the reference took from a solution through `extract_answer` (one `strip_string` more).
_SOLUTION_GOLD = {"math", "math500", "ocw"}


@dataclass(frozen=True)
class ReferenceVerdict:
    correct: bool
    prediction: str | None
    backend: str  # the LaTeX parser behind sympy: "antlr" (the reference's), "lark" or "none"
    timed_out: bool = False


def text_after_model_header(conversation: str) -> str:
    """The text after the last model header of any known format (for conversations of other formats)."""
    cut = max((conversation.rfind(h) + len(h) if h in conversation else -1) for h in MODEL_HEADERS)
    return conversation[cut:] if cut >= 0 else conversation


def graded_text(conversation: str, prompt_format: str | None = None) -> str:
    """What the reference handed to `extract_answer`: the conversation after its format's last header."""
    fmt = prompt_format if prompt_format in REFERENCE_SPLITS else _format_of(conversation)
    if fmt is None:
        return text_after_model_header(conversation).strip()
    return conversation.split(REFERENCE_SPLITS[fmt])[-1].strip()


def _format_of(conversation: str) -> str | None:
    if "<|start_header_id|>" in conversation:
        return "llama3"
    for fmt in ("gemma", "mistral", "deepseek"):
        if REFERENCE_SPLITS[fmt] in conversation:
            return fmt
    return None


# ---------------------------------------------------------------------------------------- normalisation


def _fix_fracs(text: str) -> str:
    """`\\frac12` -> `\\frac{1}{2}`, `\\frac1{7}` -> `\\frac{1}{7}`; anything shorter is left as it was."""
    pieces = text.split("\\frac")
    out = pieces[0]
    for piece in pieces[1:]:
        out += "\\frac"
        if piece.startswith("{"):
            out += piece
            continue
        if len(piece) < 2:
            return text
        first, second, rest = piece[0], piece[1], piece[2:]
        out += "{" + first + "}" + (second + rest if second == "{" else "{" + second + "}" + rest)
    return out


def _fix_a_slash_b(text: str) -> str:
    parts = text.split("/")
    if len(parts) != 2:
        return text
    a, b = parts
    try:
        left = a if "sqrt" in a else str(int(a))
        right = b if "sqrt" in b else str(int(b))
    except ValueError:
        return text
    if f"{left}/{right}" != text:
        return text
    return "\\frac{" + left + "}{" + right + "}"


def strip_string(text: str) -> str:
    """ToRA's answer normalisation, rule for rule (its quirks included: every `and` is removed)."""
    s = str(text).strip().replace("\n", "").rstrip(".")
    for old, new in (("\\!", ""), ("\\ ", ""), ("\\\\", "\\"), ("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac")):
        s = s.replace(old, new)
    s = s.replace("\\left", "").replace("\\right", "")
    without_unit = re.sub(r"\\text{.*?}$", "", s).strip()
    if without_unit and without_unit != s:
        s = without_unit
    for old in ("^{\\circ}", "^\\circ", "\\$", "$"):
        s = s.replace(old, "")
    s = s.replace("\\text", "").replace("x\\in", "")
    for old in ("\\%", "%"):
        s = s.replace(old, "")
    s = s.replace(" .", " 0.").replace("{.", "{0.").replace("\\cdot", "")
    s = s.replace("infinity", "\\infty")
    if "\\infty" not in s:
        s = s.replace("inf", "\\infty")
    s = s.replace("+\\inity", "\\infty").replace("and", "").replace("\\mathbf", "")
    s = re.sub(r"\\mbox{.*?}", "", s)
    if "j" in s and "i" not in s:
        s = s.replace("j", "i")
    s = re.sub(r"(\d+)\.0+([^\d])", r"\1\2", s)
    s = re.sub(r"(\d+)\.0+$", r"\1", s)
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        s = sides[1]
    s = re.sub(r"\\sqrt(\w+)", r"\\sqrt{\1}", s).replace(" ", "")
    return _fix_a_slash_b(_fix_fracs(s))


def reference_gold(gold: str, dataset: str | None = None) -> str:
    """The gold as the reference compared it: a MATH gold went through `extract_answer`'s tail and
    `strip_string` three times (parse_ground_truth twice, evaluate once more), any other dataset's twice."""
    if (dataset or "").lower() in _SOLUTION_GOLD:
        return strip_string(strip_string(_finish(gold)))
    return strip_string(strip_string(gold))


# ------------------------------------------------------------------------------------------- extraction

_LAST_NUMBER = re.compile(r"-?\d*\.?\d+")


def _program_output(text: str) -> str:
    if "```output" not in text:
        return ""
    return text.rsplit("```output", 1)[1].split("```", 1)[0].strip()


def _boxed_content(after: str) -> str:
    if not after:
        return ""
    if after[0] != "{":
        return after.split("$", 1)[0].strip()
    depth, chars = 1, []
    for ch in after[1:]:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                break
        chars.append(ch)
    return "".join(chars)


def _finish(pred: str) -> str:
    """The tail of ToRA's `extract_answer`: first line, no leading `:`, no trailing `.` or `/`, `strip_string`."""
    pred = pred.split("\n", 1)[0]
    if pred.startswith(":"):
        pred = pred[1:]
    for tail in (".", "/"):
        if pred.endswith(tail):
            pred = pred[:-1]
    return strip_string(pred)


def extract_reference_answer(text: str) -> str:
    """ToRA's `extract_answer` (then `strip_string` once more, as the reference's `run_execute` did)."""
    text = text[-MAX_TEXT_CHARS:]
    if "boxed" in text:
        after = text.rsplit("boxed", 1)[1]
        if not after:
            return ""
        pred = _boxed_content(after)
    elif "he answer is" in text:
        pred = text.rsplit("he answer is", 1)[1].strip()
    elif _program_output(text):
        pred = _program_output(text)
    else:
        numbers = _LAST_NUMBER.findall(text.replace(",", ""))
        pred = numbers[-1] if numbers else ""
    return strip_string(_finish(pred))


# ------------------------------------------------------------------------------------------- equality


class _OutOfTime(Exception):
    """The record's sympy budget is spent: the verdict is "not equal, timed out"."""


class _Budget:
    """Seconds of helper time a record may still use (waiting for a free or starting helper is not counted)."""

    def __init__(self) -> None:
        self.left = REFERENCE_TIMEOUT_S


def _float(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def math_equal(prediction: str, reference: str, symbolic: bool = True) -> bool:
    """ToRA's `math_equal` with its percent rule and tolerances; sympy through the bounded helper processes."""
    try:
        return _math_equal(prediction, reference, symbolic, _Budget())
    except _OutOfTime:
        return False


def _math_equal(prediction: str, reference: str, symbolic: bool, budget: _Budget) -> bool:
    pred_num, ref_num = _float(prediction), _float(reference)
    if pred_num is not None and ref_num is not None:
        candidates = (ref_num / 100, ref_num, ref_num * 100)
        return any(_close(c, pred_num, 1e-4) for c in candidates)
    if not prediction:
        return False
    reference, prediction = reference.strip(), prediction.strip()
    pred_s, ref_s = prediction, reference
    if (prediction.startswith("[") and prediction.endswith("]") and not reference.startswith("(")) or (
        prediction.startswith("(") and prediction.endswith(")") and not reference.startswith("[")
    ):
        pred_s, ref_s = pred_s.strip("[]()"), ref_s.strip("[]()")
    for bracket in "{}()":
        pred_s, ref_s = pred_s.replace(bracket, ""), ref_s.replace(bracket, "")
    if pred_s == ref_s:
        return True
    pair = (prediction[:1] + prediction[-1:], reference[:1] + reference[-1:])
    if pair in (("[]", "[]"), ("()", "()")):
        pred_parts, ref_parts = prediction[1:-1].split(","), reference[1:-1].split(",")
        if len(pred_parts) == len(ref_parts) and all(
            _math_equal(p, r, symbolic, budget) for p, r in zip(pred_parts, ref_parts, strict=True)
        ):
            return True
    if not symbolic or len(prediction) > MAX_SYMBOLIC_CHARS or len(reference) > MAX_SYMBOLIC_CHARS:
        return False
    if _apart(prediction, reference):
        return False  # what sympy would conclude, known without it (the common case of a wrong answer)
    return _symbolic_equal(prediction, reference, budget)


def _close(a: float, b: float, rel: float) -> bool:
    try:
        return math.isclose(a, b, rel_tol=rel)
    except (TypeError, ValueError, OverflowError):
        return False


# ------------------------------------------------------------------------- wrong answers without sympy
#
# Most wrong answers differ from the gold by value: 42 against \frac{\sqrt{3}}{2} or 7(x+3)(x-3).  For text in
# a small LaTeX subset that sympy's antlr parser reads in one known way (numbers, letters as symbols, `\pi` as
# the symbol pi as antlr makes it, + - * / \times, ^{...}, \frac{}{}, \sqrt{}, implicit products, () and {}
# groups; a letter before `(` (a function for antlr), `d` before a letter (a differential) and anything else
# are not read), both sides are evaluated here in floating point at two points.  When the difference is
# clearly not zero, and no side with symbols is constant at both points (its symbols might cancel), sympy can
# find neither `simplify(a - b) == 0` nor `isclose(N(a), N(b), rel_tol=1e-3)` (for constants the difference is
# also beyond that tolerance): the verdict is "not equal" without the helper.  Everything else, including
# any overflow or close call, goes to sympy as before.

_SUBSET = re.compile(r"(?:[0-9.,+\-*/:^()\[\]{}a-zA-Z]|\\(?:frac|sqrt|pi|times)(?![a-zA-Z]))+")
# What antlr's lexer skips: spacing commands (a word command only when no letter follows: `\quadx` is a symbol).
_SKIPPED = re.compile(r"\\[,:;!]|\\(?:quad|qquad|(?:neg)?(?:thin|med|thick)space)(?![a-zA-Z])")
_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")  # antlr's `number`: digits, comma groups of three, decimals
_POINT_VALUES = (
    (0.7310585786, 1.3178, -0.4423, 2.1171, 0.3819, -1.2743, 1.0987, -0.8312),
    (1.6449, -0.5772, 0.9159, 1.2021, -2.3026, 0.6931, -1.4142, 0.3333),
)


class _Unreadable(Exception):
    pass


class _Reader:
    """Reads the subset by recursive descent, evaluating as it goes; symbols take the point's values."""

    def __init__(self, text: str, point: dict[str, float], values: tuple[float, ...]) -> None:
        self.text, self.i, self.point, self.values, self.symbols = text, 0, point, values, False

    def read(self) -> complex:
        value = self._sum()
        if self.i != len(self.text):
            raise _Unreadable
        return value

    def _at(self, word: str) -> bool:
        return self.text.startswith(word, self.i)

    def _take(self, word: str) -> bool:
        if self._at(word):
            self.i += len(word)
            return True
        return False

    def _sum(self) -> complex:
        value = -self._product() if self._take("-") else self._product()
        while self._at("+") or self._at("-"):
            minus = self._take("-") or not self._take("+")
            term = self._product()
            value = value - term if minus else value + term
        return value

    def _product(self) -> complex:
        value = self._power()
        while self.i < len(self.text):
            if self._take("\\times") or self._take("*"):
                value *= self._power()
            elif self._take("/") or self._take(":"):
                value = _divide(value, self._power())  # antlr reads a ratio 1:2 as a division
            elif self.text[self.i] in "([{\\" or self.text[self.i].isalnum():
                value *= self._power()  # 2x, 2\sqrt{3}, 1\frac{2}{3}: products (antlr reads no mixed numbers)
            else:
                break
        return value

    def _power(self) -> complex:
        base = self._atom()
        if not self._take("^"):
            return base
        if self._at("{"):
            exponent = self._group()
        elif self.i < len(self.text) and self.text[self.i].isdigit():
            exponent = self._number()  # x^23 is x to the 23rd: antlr's NUMBER token takes every digit
        elif self.i < len(self.text) and self.text[self.i].isalpha():
            exponent = self._letter()
        else:
            raise _Unreadable
        positive_base = base.real > 0 and base.imag == 0
        if exponent.imag or abs(exponent.real) > 4096 or not (positive_base or exponent.real.is_integer()):
            raise _Unreadable
        if base == 0 and exponent.real <= 0:
            raise _Unreadable
        return base**exponent.real

    def _group(self) -> complex:
        close = {"(": ")", "[": "]", "{": "}"}[self.text[self.i]]
        self.i += 1
        value = self._sum()
        if not self._take(close):
            raise _Unreadable
        return value

    def _symbol(self, name: str) -> complex:
        self.symbols = True
        if name not in self.point:
            self.point[name] = self.values[len(self.point) % len(self.values)]
        return complex(self.point[name])

    def _number(self) -> complex:
        number = _NUMBER.match(self.text, self.i)
        if number is None:
            raise _Unreadable
        self.i = number.end()
        return complex(float(number.group().replace(",", "")))

    def _letter(self) -> complex:
        c, after = self.text[self.i], self.text[self.i + 1 : self.i + 2]
        if after == "(":
            raise _Unreadable  # x(2): a function application for antlr
        if c == "d" and (after == "\\" or (after.isalpha() and "\\frac" in self.text)):
            raise _Unreadable  # differentials: \frac{dy}{dx} is a derivative
        if c == "d" and after.isalpha():
            self.i += 2
            return self._symbol(c + after)  # `dy` is one symbol (antlr's DIFFERENTIAL token)
        self.i += 1
        return self._symbol(c)

    def _atom(self) -> complex:
        c = self.text[self.i] if self.i < len(self.text) else ""
        if c in ("(", "[", "{"):
            return self._group()
        if c.isdigit():
            return self._number()
        if c.isalpha():
            return self._letter()
        if self._take("\\pi"):
            return self._symbol("\\pi")
        if self._take("\\frac"):
            numerator = self._frac_part()
            return _divide(numerator, self._frac_part())
        if self._take("\\sqrt"):
            radicand = self._braced()
            if radicand.imag or radicand.real < 0:
                raise _Unreadable
            return complex(math.sqrt(radicand.real))
        raise _Unreadable

    def _braced(self) -> complex:
        if not self._at("{"):
            raise _Unreadable
        return self._group()

    def _frac_part(self) -> complex:
        if self.i < len(self.text) and self.text[self.i].isdigit():
            self.i += 1  # \frac{625}4: one DIGIT token, \frac{625}45 is (625/4)5
            return complex(int(self.text[self.i - 1]))
        return self._braced()


def _divide(a: complex, b: complex) -> complex:
    if b == 0:
        raise _Unreadable
    return a / b


def _evaluate(text: str, point: dict[str, float], values: tuple[float, ...]) -> tuple[complex, bool] | None:
    text = _SKIPPED.sub("", text)
    if len(text) > 200 or not _SUBSET.fullmatch(text):
        return None
    reader = _Reader(text, point, values)
    try:
        value = reader.read()
    except (_Unreadable, OverflowError, ValueError, ZeroDivisionError, RecursionError):
        return None
    if not (math.isfinite(value.real) and math.isfinite(value.imag)) or abs(value) > 1e200:
        return None
    return value, reader.symbols


_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _bracket_list(text: str) -> bool:
    """`(1,2)`, `[0,\\infty)`, `{A,D}`: a comma inside the first bracket, but not one that continues a number
    (`(1,000)` is the number 1000 for antlr)."""
    if text[:1] not in ("(", "[", "{"):
        return False
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return False
        elif ch == "," and depth == 1:
            return not _continues_number(text, i)
    return False


def _first_item(text: str) -> str | None:
    """What antlr reads of a list: `2,-3,4` is 2 (it stops at the first comma outside brackets, without an
    error).  None when a comma could continue a number (`1,000` is one NUMBER token)."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0 and not _continues_number(text, i):
            return text[:i] or None
    return text


def _continues_number(text: str, comma: int) -> bool:
    """`1,000`: a comma between a digit and three more is part of antlr's `number`."""
    return text[comma - 1 : comma].isdigit() and _NUMBER.match(text, comma - 1) is not None and (
        re.match(r"\d,\d{3}", text[comma - 1 : comma + 4]) is not None
    )


_UNLEXABLE = re.compile(r"\\[0-9-]|&")


def _never_a_number(text: str) -> bool:
    """Texts that sympy reads as something no number equals, whatever the number:
    - a bracketed list (`(1,2)`, `[0,\\infty)`, `{A,D}`): antlr stops at its comma with a syntax error, and
      parse_expr makes a tuple, a list, a set or nothing of it;
    - a matrix (`\\begin{pmatrix}6\\3\\end{pmatrix}` once strip_string has halved its `\\\\`): `\\3`, `\\-`
      and `&` are no antlr token (a syntax error) and parse_expr cannot read a backslash;
    - a relation (`4x-5y=-50`, `f(2)<f(1)`) before any top-level comma: an Eq or a Boolean, which neither
      subtracts from a number nor evaluates to one."""
    if text.startswith("\\begin{") and _UNLEXABLE.search(text):
        return True
    first = _first_item(text)
    if first is None:
        return False
    depth = 0
    for ch in first:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch in "=<>" and depth == 0:
            return True
    return _bracket_list(text)


def _apart(a: str, b: str) -> bool:
    """True when sympy could not find `a` equal to `b` (see above); False means "ask sympy"."""
    a, b = _SKIPPED.sub("", a), _SKIPPED.sub("", b)
    if (_PLAIN_NUMBER.fullmatch(a) and _never_a_number(b)) or (_PLAIN_NUMBER.fullmatch(b) and _never_a_number(a)):
        return True
    first_a, first_b = _first_item(a), _first_item(b)
    if first_a is None or first_b is None:
        return False
    a, b = first_a, first_b
    at: list[list[tuple[complex, bool]]] = []
    for values in _POINT_VALUES:
        point: dict[str, float] = {}  # one assignment for both sides
        pair = [_evaluate(x, point, values) for x in (a, b)]
        if pair[0] is None or pair[1] is None:
            return False
        at.append(pair)  # type: ignore[arg-type]
        if not (pair[0][1] or pair[1][1]):  # two constants: beyond isclose's tolerance, with room for rounding
            (va, _), (vb, _) = pair  # type: ignore[misc]
            return abs(va - vb) > 2e-3 * max(abs(va), abs(vb)) and abs(va - vb) > 1e-9
    for side in (0, 1):
        (v, symbolic), (w, _) = at[0][side], at[1][side]
        if symbolic and abs(v - w) <= 1e-6 * max(abs(v), abs(w), 1.0):
            return False  # symbols that may cancel (x - x + 1): sympy decides
    return any(abs(p[0][0] - p[1][0]) > 1e-6 * max(abs(p[0][0]), abs(p[1][0]), 1.0) for p in at)


# Verdicts of the sympy step by (prediction, gold): samples of one problem often repeat an answer.
_SYMBOLIC_CACHE: OrderedDict[tuple[str, str], bool] = OrderedDict()
_SYMBOLIC_CACHE_SIZE = 65_536
_CACHE_LOCK = threading.Lock()


def _symbolic_equal(a: str, b: str, budget: _Budget) -> bool:
    with _CACHE_LOCK:
        known = _SYMBOLIC_CACHE.get((a, b))
        if known is not None:
            _SYMBOLIC_CACHE.move_to_end((a, b))
            return known
    equal = _POOL.equal(a, b, budget)  # raises _OutOfTime: a timeout is never cached
    with _CACHE_LOCK:
        _SYMBOLIC_CACHE[(a, b)] = equal
        if len(_SYMBOLIC_CACHE) > _SYMBOLIC_CACHE_SIZE:
            _SYMBOLIC_CACHE.popitem(last=False)
    return equal


def reference_verdict(
    conversation: str, gold: str, *, dataset: str | None = None, prompt_format: str | None = None
) -> ReferenceVerdict:
    """The reference's verdict on the conversation it would have written, with the LaTeX backend used and
    whether sympy ran out of time (then "not equal", as the reference counted its timeouts)."""
    prediction = extract_reference_answer(graded_text(conversation, prompt_format))
    try:
        correct = _math_equal(prediction, reference_gold(gold, dataset), True, _Budget())
    except _OutOfTime:
        return ReferenceVerdict(False, prediction, _POOL.backend, timed_out=True)
    return ReferenceVerdict(correct, prediction, _POOL.backend)


def reference_grade(conversation: str, gold: str) -> tuple[bool, str]:
    """(correct, prediction) as the reference would judge the conversation it wrote."""
    verdict = reference_verdict(conversation, gold)
    return verdict.correct, verdict.prediction or ""


def latex_backend() -> str:
    """The LaTeX parser the sympy step uses: "antlr" (the reference's), "lark" or "none"."""
    return _POOL.backend


def _predicted_backend() -> str:
    """The helpers' backend, predicted without starting one (they report the real one when they start):
    sympy's antlr parser is generated for antlr 4.11, whose runtime is shipped in _vendor."""
    spec = importlib.util.find_spec("sympy")
    if spec is None or spec.origin is None:
        return "none"
    latex = Path(spec.origin).parent / "parsing" / "latex"
    try:
        generated = (latex / "_antlr" / "latexparser.py").read_text(encoding="utf-8", errors="replace")
    except OSError:
        generated = ""
    if 'checkVersion("4.11' in generated and (_VENDOR / "antlr4" / "__init__.py").is_file():
        return "antlr"
    return "lark" if (latex / "lark").is_dir() and importlib.util.find_spec("lark") is not None else "none"


# --------------------------------------------------------------------------------------- sympy, bounded


class _Helper:
    """One sympy helper process; `ask` returns its verdict or raises TimeoutError/OSError (then kill it)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.backend: str | None = None

    def ask(self, a: str, b: str, deadline: float) -> bool:
        proc = self.proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps([a, b]).encode() + b"\n")
        proc.stdin.flush()
        return _read_line(proc.stdout.fileno(), deadline).strip() == b"1"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_SOURCE, str(_VENDOR)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        try:
            ready = _read_line(self.proc.stdout.fileno(), time.monotonic() + _WORKER_START_TIMEOUT_S).split()
        except TimeoutError:
            raise OSError("the sympy helper did not start in time") from None
        if len(ready) != 2 or ready[0] != b"ready":
            raise OSError("the sympy helper did not start")
        self.backend = ready[1].decode()

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)


class _HelperPool:
    """Up to `size` helpers, started when needed; a caller takes an idle one (or waits for one) per question."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._cond = threading.Condition()
        self._idle: list[_Helper] = []
        self._all: list[_Helper] = []
        self._pid = os.getpid()  # a forked child starts its own helpers, never shares the parent's pipes
        self._backend: str | None = None
        atexit.register(self.close)

    @property
    def backend(self) -> str:
        if self._backend is None:
            self._backend = _predicted_backend()
        return self._backend

    def equal(self, a: str, b: str, budget: _Budget) -> bool:
        helper = self._take()
        try:
            if budget.left <= 0:
                raise _OutOfTime
            if helper.proc is None or helper.proc.poll() is not None:
                helper.start()
                self._backend = helper.backend
            start = time.monotonic()
            try:
                return helper.ask(a, b, start + budget.left)
            finally:
                budget.left -= time.monotonic() - start
        except TimeoutError:
            helper.kill()
            raise _OutOfTime from None
        except (OSError, ValueError):
            helper.kill()
            return False
        finally:
            self._give_back(helper)

    def _take(self) -> _Helper:
        with self._cond:
            if self._pid != os.getpid():
                self._idle, self._all, self._pid = [], [], os.getpid()
            while not self._idle:
                # Another helper costs seconds of CPU to start (sympy, the grammar): only when callers queue.
                if len(self._all) < self.size and (not self._all or not self._cond.wait(_SPARE_HELPER_WAIT_S)):
                    if self._idle:
                        break
                    helper = _Helper()
                    self._all.append(helper)
                    return helper
                if len(self._all) >= self.size:
                    self._cond.wait()
            return self._idle.pop()

    def _give_back(self, helper: _Helper) -> None:
        with self._cond:
            if helper in self._all:
                self._idle.append(helper)
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            helpers, self._idle, self._all = list(self._all), [], []
            own = self._pid == os.getpid()
        if own:
            for helper in helpers:
                try:
                    helper.kill()
                except Exception:  # exiting: a helper that will not die is the OS's now
                    pass


def _read_line(fd: int, deadline: float) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError("the sympy helper did not answer in time")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise OSError("the sympy helper exited")
        data += chunk
    return data


# The helper: the reference's `symbolic_equal`.  Each side is parsed with sympy's `parse_latex` (antlr on the
# shipped 4.11 runtime, put first on the path; lark only where antlr cannot load), else with parse_expr, but
# only for text of numbers, operators, single letters and a few function names (parse_expr evaluates Python,
# and the prediction is the model's).  Sides that do not parse are "not equal" (the reference would hand
# such a string to sympify, which evaluates it).  Then `simplify(a - b) == 0` or `isclose(N(a), N(b), 1e-3)`;
# when the two sides' values differ beyond any rounding (constants, or at one rational point for expressions
# in variables), `simplify` cannot find zero and is skipped: it is what made a wrong answer cost up to seconds.
_WORKER_SOURCE = r"""
import functools, json, math, os, re, resource, sys
sys.path[:] = [sys.argv[1]] + [p for p in sys.path if p not in ("", ".", os.getcwd())]
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from sympy import Expr, N, Rational, simplify
from sympy.parsing.latex import parse_latex
from sympy.parsing.sympy_parser import parse_expr, standard_transformations, convert_xor

def _latex(s, backend):
    try:
        return parse_latex(s, backend=backend)
    except TypeError:  # sympy 1.12: antlr only, no backend argument
        if backend != "antlr":
            raise ImportError(backend)
        return parse_latex(s)

BACKEND = "none"
for candidate in ("antlr", "lark"):
    try:
        _latex(r"\frac{1}{2}", candidate)  # also loads the grammar before the first timed comparison
        BACKEND = candidate
        break
    except Exception:
        pass
NAMES = {"sqrt", "pi", "oo", "sin", "cos", "tan", "log", "exp", "E", "I", "Abs"}
SAFE = re.compile(r"[0-9A-Za-z+\-*/^()., ]*")

@functools.lru_cache(maxsize=4096)  # a gold answer is parsed once, not once per sample
def parse(s):
    if BACKEND != "none":
        try:
            return _latex(s, BACKEND)
        except Exception:
            pass
    if SAFE.fullmatch(s) and all(len(w) == 1 or w in NAMES for w in re.findall(r"[A-Za-z]+", s)):
        try:
            return parse_expr(s, transformations=standard_transformations + (convert_xor,))
        except Exception:
            pass
    return None

def close(a, b):
    try:
        return math.isclose(N(a), N(b), rel_tol=1e-3)
    except Exception:
        return False

def apart(a, b):
    # True when a - b is certainly not zero: constants (or both sides at one point, for variables) whose
    # values differ by far more than the evaluation error, so simplify(a - b) cannot be 0.
    if not (isinstance(a, Expr) and isinstance(b, Expr)):
        return False
    point = {s: Rational(5 + 2 * k, 7 + 3 * k) for k, s in enumerate(sorted(a.free_symbols | b.free_symbols, key=str))}
    try:
        x, y = (complex(N(e.subs(point) if point else e, 30)) for e in (a, b))
    except Exception:
        return False
    if not all(math.isfinite(v) for v in (x.real, x.imag, y.real, y.imag)):
        return False
    return abs(x - y) > 1e-9 * max(abs(x), abs(y), 1.0)

def equal(a, b):
    a, b = parse(a), parse(b)
    if a is None or b is None:
        return False
    if close(a, b):
        return True
    if apart(a, b):
        return False
    try:
        return simplify(a - b) == 0
    except Exception:
        return False

out = sys.stdout.buffer
out.write(b"ready " + BACKEND.encode() + b"\n"); out.flush()
for line in sys.stdin.buffer:
    try:
        a, b = json.loads(line)
        ok = equal(str(a), str(b))
    except Exception:
        ok = False
    out.write(b"1\n" if ok else b"0\n"); out.flush()
"""

_POOL = _HelperPool(max(1, min(MAX_HELPERS, os.cpu_count() or 1)))
