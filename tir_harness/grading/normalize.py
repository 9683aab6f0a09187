"""Text cleanup of a bare answer before parsing: presentation-only LaTeX goes, meaning stays.

Removed: math delimiters, `\\left`/`\\right`, spacing commands, `\\displaystyle`, currency signs, units written
as `\\text{ cm}` or plain words after a number, thousands separators, trailing periods, `\\pmod{n}`.
Rewritten to one spelling: `\\dfrac`/`\\tfrac`/`\\cfrac` -> `\\frac`, degrees -> `°`, percent words -> `%`,
unicode math symbols -> LaTeX. Each rule is listed in docs/grading.md.
"""

from __future__ import annotations

import functools
import re

from tir_harness.grading.boxed import last_boxed

# Bare answers are short; longer text is cut (the grader compares over-long answers as plain text anyway).
MAX_CLEAN_CHARS = 5_000
_DOUBLED = re.compile(r"(?<!\\)\\\\(?=[a-zA-Z])")

_UNICODE = {
    "\u2212": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u00d7": r"\times ",
    "\u00b7": r"\cdot ",
    "\u22c5": r"\cdot ",
    "\u00f7": r"\div ",
    "\u03c0": r"\pi ",
    "\u221e": r"\infty ",
    "\u221a": r"\sqrt",
    "\u2264": r"\le ",
    "\u2265": r"\ge ",
    "\u2260": r"\ne ",
    "\u222a": r"\cup ",
    "\u2229": r"\cap ",
    "\u2208": r"\in ",
    "\u00b2": "^2",
    "\u00b3": "^3",
    "\u00ba": "°",
    "\uff0c": ",",
    "\uff1a": ":",
    "\uff08": "(",
    "\uff09": ")",
    "\u200b": "",
    "\u00a0": " ",
    "\u2009": " ",
    "\u202f": " ",
    "\u20ac": " ",
    "\u00a3": " ",
    "\u00a5": " ",
    "\u20b9": " ",
    "\u00b1": r"\pm ",
    "\u2213": r"\mp ",
    "\u3002": ".",
    "\u2026": r"\ldots ",
}
_UNICODE_RE = re.compile("|".join(re.escape(k) for k in _UNICODE))

_SIZING = re.compile(
    r"\\(?:left|right|middle|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|bigg|Bigg|big|Big)(?![a-zA-Z])"
)
_INVISIBLE = re.compile(r"\\(?:left|right|middle)\s*\.")
_STYLE = re.compile(r"\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits|hline|ldots|cdots|dots)(?![a-zA-Z])")
# Consuming `\\\\` (a matrix row break) first keeps `\\\\ ` from reading as `\\` + `\ `.
_SPACES = re.compile(r"\\\\|\\(?:qquad|quad|enspace|thinspace|medspace|thickspace|[,;:> !])")
_DELIMITERS = re.compile(r"\\\\|\\[()\[\]]")
# Thousands written with an explicit LaTeX separator are unambiguous anywhere: 1{,}000, 11,\!111, 1\,000.
_THOUSANDS_TEX = re.compile(r"(\d)\s*(?:\{\s*,\s*\}|,\s*\\[!,]|\\[,!])\s*(?=\d{3}(?!\d))")
_THOUSANDS_COMMA = re.compile(r"(?<![\d.,])[1-9]\d{0,2}(?:,\d{3})+(?!\d|,\d)(?:\.\d+)?")
_THOUSANDS_SPACE = re.compile(r"(?<![\d.,])[1-9]\d{0,2}(?: \d{3})+(?![\d,])")
_DEGREE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ(?![a-zA-Z])|\\degree(?![a-zA-Z])|(?<=[\d}])\s*degrees?\b")
_PERCENT_WORD = re.compile(r"(?<=[\d}.])\s*(?:percentage|percent|pct)\b", re.IGNORECASE)
_PRIME = re.compile(r"\^\s*\{?\s*\\prime\s*\}?")
_PMOD = re.compile(r"\\pmod\s*(?:\{[^{}]*\}|\d+)|\\mod\s*\d+|\(\s*\\mod\s*\d+\s*\)|\\bmod\s*\d+")
_TEXTLIKE = re.compile(
    r"\\(text|textbf|textit|textrm|textnormal|textsf|texttt|mbox|hbox|mathrm|mathit|mathbf|mathsf|mathtt"
    r"|mathcal|boldsymbol|bm|operatorname|rm|bf|emph)\s*\{([^{}]*)\}(\s*\^\s*\{?\s*[23]\s*\}?)?"
)
_TEXT_COMMANDS = {"text", "textbf", "textit", "textrm", "textnormal", "textsf", "texttt", "mbox", "hbox", "emph"}
_SEPARATOR_WORDS = {"and", "or", "und", "et", "oder", ","}
# Words that mean something in a math answer; anything else alphabetic after a number is a unit.
MATH_WORDS = {
    "sqrt",
    "pi",
    "sin",
    "cos",
    "tan",
    "sec",
    "csc",
    "cot",
    "log",
    "ln",
    "lg",
    "exp",
    "and",
    "or",
    "oo",
    "inf",
    "infty",
    "infinity",
    "i",
    "e",
    "arcsin",
    "arccos",
    "arctan",
    "sinh",
    "cosh",
    "tanh",
    "mod",
}
# A unit glued to the number must have 3+ letters (`10weeks`): `10cm`, `10m` could be products with variables.
_TRAILING_WORDS = re.compile(
    r"(?<=[\d}).%°\]])(?:\s+(?=[A-Za-z]{2})|(?=[A-Za-z]{3}))((?:[A-Za-z]{2,}(?![A-Za-z])\.?\s*)+)"
    r"(?:\^\s*\{?\s*[23]\s*\}?)?\s*$"
)
_MIXED_NUMBER = re.compile(r"(-?\d+)\s+(\d+)/(\d+)")
_TRAILING_PUNCT = re.compile(r"(?:[\s.,;:]|(?<!\\)\\$)+$")  # also a dangling backslash: `185\`
_LEADING_PUNCT = re.compile(r"^[\s=:,;]+")
_PY_INTERVAL = re.compile(r"Interval\.(open|Ropen|Lopen)\(")


def undouble_backslashes(text: str) -> str:
    r"""`\\frac` -> `\frac`: responses that went through one JSON or repr escape too many."""
    return _DOUBLED.sub(lambda _: "\\", text) if "\\\\" in text else text


def clean(text: str) -> str:
    """Normalize a bare final answer (not a whole response) to a canonical LaTeX-ish string."""
    s = undouble_backslashes(text[:MAX_CLEAN_CHARS]).strip()
    s = _UNICODE_RE.sub(lambda m: _UNICODE[m.group(0)], s)
    if "\\boxed" in s or "\\fbox" in s:
        boxed = last_boxed(s[-MAX_CLEAN_CHARS:])
        if boxed is not None:
            s = boxed
    s = s.replace("\\$", " ").replace("$", " ")
    s = _DELIMITERS.sub(_keep_row_breaks, s)
    s = _INVISIBLE.sub("", s)
    s = _SIZING.sub("", s)
    s = _STYLE.sub(" ", s)
    s = re.sub(r"\\[dtc]frac(?![a-zA-Z])", r"\\frac", s)
    s = re.sub(r"\\[dt]binom(?![a-zA-Z])", r"\\binom", s)
    s = re.sub(r"\\(?:lvert|rvert|vert|mid|lVert|rVert|Vert)(?![a-zA-Z])|\\\|", "|", s)
    s = _PRIME.sub("'", s)
    s = _DEGREE.sub("°", s)
    s = s.replace("\\%", "%")
    s = _PERCENT_WORD.sub("%", s)
    s = _PMOD.sub(" ", s)
    s = _THOUSANDS_TEX.sub(r"\1", s)
    s = _SPACES.sub(_keep_row_breaks, s).replace("~", " ")
    s = _unwrap_text(s)
    s = _top_level_thousands(s)
    s = _PY_INTERVAL.sub(lambda m: f"Interval{m.group(1).capitalize()}(", s)
    s = _strip_trailing_units(s)
    s = _TRAILING_PUNCT.sub("", s)
    s = _LEADING_PUNCT.sub("", s)
    s = re.sub(r"\s+", " ", s).strip()
    mixed = _MIXED_NUMBER.fullmatch(s)
    if mixed:  # `1 1/2` written as a mixed number
        s = f"{mixed.group(1)}\\frac{{{mixed.group(2)}}}{{{mixed.group(3)}}}"
    return s


def _keep_row_breaks(match: re.Match[str]) -> str:
    return match.group(0) if match.group(0) == "\\\\" else " "


def _unwrap_text(s: str) -> str:
    # Innermost first, so `\text{\textbf{x}}` unwraps fully.
    for _ in range(10):
        new = _TEXTLIKE.sub(functools.partial(_text_replacement, s=s), s)
        if new == s:
            break
        s = new
    return s


def _text_replacement(match: re.Match[str], s: str) -> str:
    command, content = match.group(1), match.group(2).strip()
    if command == "operatorname":
        return "\\" + content.replace(" ", "") + " "
    if content.lower() in _SEPARATOR_WORDS or not content:
        return f" {content} "
    before = s[: match.start()].rstrip()
    after_value = bool(before) and (
        before[-1].isdigit() or before[-1] in "})%°]" or re.search(r"\\[a-zA-Z]+$", before) is not None
    )
    if command in _TEXT_COMMANDS or len(content) > 1:
        if after_value and re.fullmatch(r"[A-Za-z][A-Za-z .]*", content) and content.lower() not in MATH_WORDS:
            return " "  # a unit: \text{ cm}, \mbox{ cm}^2, \mathrm{kg}
    return f" {content} " + (match.group(3) or "")


def _top_level_thousands(s: str) -> str:
    """1,000 and 1 000 -> 1000, outside brackets only: inside, (3,100) is a pair."""
    if "," not in s and " " not in s:
        return s
    out: list[str] = []
    depth = 0
    pos = 0
    for match in _THOUSANDS_COMMA.finditer(s):
        out.append(s[pos : match.start()])
        depth += _depth_change(s[pos : match.start()])
        out.append(match.group(0).replace(",", "") if depth == 0 else match.group(0))
        depth += _depth_change(match.group(0))
        pos = match.end()
    out.append(s[pos:])
    s = "".join(out)
    if depth_free(s):
        s = _THOUSANDS_SPACE.sub(lambda m: m.group(0).replace(" ", ""), s)
    return s


def _depth_change(chunk: str) -> int:
    return sum(chunk.count(c) for c in "([{") - sum(chunk.count(c) for c in ")]}")


def depth_free(s: str) -> bool:
    return not any(c in s for c in "([{")


def _strip_trailing_units(s: str) -> str:
    match = _TRAILING_WORDS.search(s)
    if match is None:
        return s
    words = [w.strip(".").lower() for w in match.group(1).split()]
    if any(w in MATH_WORDS for w in words):
        return s
    return s[: match.start()]
