"""Regression tests for every answer family of issue 3: each case is checked in both argument orders."""

from __future__ import annotations

import pytest

from tir_harness.grading import equivalent, grade


def both_ways(cases: list[tuple[str, str, bool]]) -> list[pytest.param]:
    return [pytest.param(a, b, want, id=f"{a} | {b}") for a, b, want in cases]


def check(a: str, b: str, want: bool) -> None:
    assert equivalent(a, b) is want, grade(a, b, extracted=True).reason
    assert equivalent(b, a) is want, grade(b, a, extracted=True).reason


EXACTNESS = [
    (r"\frac{1}{2006!}", r"\frac{1}{2004!}", False),
    (r"\frac{1}{2^{98}}", r"\frac{1}{2^{99}}", False),
    (r"3^{100}", r"3^{100}+1", False),
    (r"2^{10}", "1024", True),
    (r"\frac{2006!}{2004!}", r"2006 \cdot 2005", True),
    (r"\sqrt{8}", r"2\sqrt{2}", True),
    (r"\sqrt{8}-2\sqrt{2}", "0", True),
    (r"\frac{\sqrt{3}}{3}", r"\frac{1}{\sqrt{3}}", True),
    (r"2\pi", r"\pi + \pi", True),
    (r"\sqrt{2}", r"\frac{99}{70}", False),  # 1.41428...: close, but both sides are exact
    (r"\pi", r"\frac{355}{113}", False),
    # A decimal stands for what rounds or truncates to it, with about 4 significant digits at least.
    ("0.333333", r"\frac13", True),
    ("0.3333", r"\frac13", True),
    ("0.333", r"\frac13", False),
    ("0.33", r"\frac{1}{3}", False),
    ("1.41421356", r"\sqrt2", True),
    ("1.4142135623730951", r"\sqrt{2}", True),
    ("125.663", r"40\pi", True),  # truncated
    ("125.664", r"40\pi", True),  # rounded
    ("125.665", r"40\pi", False),
    ("5.001", "5", False),
    ("0.0", r"\frac{1}{2006!}", False),
    ("0.30000000000000004", "0.3", True),
    ("16386.17", "16386.2", True),
    ("7.8", "7.78", False),
    ("1000.0", "1000", True),
    (".5", r"\frac12", True),
    ("-0.5", "0.5", False),
    (r"2.5 \times 10^{-3}", r"\frac{1}{400}", True),
    ("1e-05", "0.00001", True),
]

NO_DROPPED_TERMS = [
    (r"1+\frac{1}{e}", r"1-\frac{1}{e}", False),
    (r"1 - \frac{1}{\mathrm{e}}", r"1-e^{-1}", True),
    ("x+1", "x+2n+1", False),
    ("(+5)(b+2)", "(a+5)(b+2)", False),
    (r"\frac{x}{7}+\frac{2}{7}", r"\frac{x+2}{7}", True),
    (r"\sec^2(y)", r"\tan^2(y)+1", True),
    ("f(y)", "f(x)", False),
    (r"\sqrt{x^2}", "x", False),  # differ for negative x
    ("|x|", r"\sqrt{x^2}", True),
    ("2^6 * 3^5 * 5^4", "2^6 3^5 5^4", True),
]

INTERVALS = [
    ("(-3,2)", "[-3,2]", False),
    ("[0,9)", "(0,9)", False),
    ("[0,9)", "[0,9)", True),
    ("(0,1]", "(0,1)", False),
    (r"(-\infty, 2) \cup (3, \infty)", r"(3,\infty) \cup (-\infty, 2)", True),
    (r"(-\infty, 2) \cup (3, \infty)", r"(-\infty, 3) \cup (2, \infty)", False),
    (r"[1,+\infty)", r"[1,\infty)", True),
    (r"(-\infty, 2]", r"(-\infty, 2)", False),
    (r"\{-1\} \cup [0,7)", r"[0,7) \cup \{-1\}", True),
    (r"x \in [-2,7]", r"-2 \le x \le 7", True),
    (r"x \geq 5", "[5, \\infty)", True),
    ("-x > -1", "x < 1", True),
    ("x > -1", "x < 1", False),
    (r"x \neq 3", r"(-\infty,3)\cup(3,\infty)", True),
    (r"[1,+\infty)", r"[2^{\frac{1}{2^{1000}}}, \infty)", False),  # exact endpoints compare exactly
]

SETS_TUPLES_LISTS = [
    ("x = 2, 3", "3, 2", True),
    ("2, 3", "3, 2", True),
    ("(2, 3)", "(3, 2)", False),
    ("(2, 3)", "(2, 3)", True),
    (r"\{2, 3\}", "3, 2", True),
    (r"\{2, 3\}", "(2, 3)", False),
    ("x = 2 or x = 3", "2, 3", True),
    ("1, 2, 3", "1, 2", False),
    ("1, 1, 2", "2, 1", True),  # duplicates do not count
    ("(1,2),(3,4)", "(3,4),(1,2)", True),
    ("(1,2),(3,4)", "(2,1),(3,4)", False),
    ("{1,3}", "(1,3)", True),  # `{}` are TeX grouping: a bare list, read in order against a tuple
    ("{1,3}", "(3,1)", False),
    ("[1, 2, 3]", "(1, 3, 2)", False),
    ("[x, x + 1]", "[x + 1, x]", False),
    ("p=5,q=2;p=7,q=2", "(5,2),(7,2)", True),
    (r"x = 1, y = 2, z = 3", "1, 2, 3", True),
    ("1:2", "1:2", True),
    ("12:00", "1:00", False),
]

EQUATIONS = [
    ("x = 5", "5", True),
    ("y = 2x+1", "2x+1", True),
    (r"e^{i\pi} = -1", "-1", True),
    ("f(x) = 2x + 3", "y = 2x + 3", True),
    ("2x+4y-3=0", r"y=-\frac{1}{2}x+\frac{3}{4}", True),
    ("x + y = 1", "x - y = 1", False),
    ("y = 2x + 1", "2y = 4x + 2", True),
    ("2x+z=1", "1", False),
    ("7 = 11a+c", "11a+c", False),
    ("x = 5+5+1 = 11", "x = 11", True),
    (r"x = \frac13 \approx 0.33", r"\frac13", True),
    (r"\sin(x)=\frac{42}{59}", r"\cos(x)=\frac{42}{59}", False),
    ("(p,q)=(3,2)", "(3,2)", True),
    (r"S_{MBCN}:S=7:32", "7:32", True),
    ("x = y", "x = z", False),
]

TEXT_AND_UNITS = [
    (r"\text{(B)}", "B", True),
    (r"\text{(B)}", "C", False),
    ("C", "(C) Cecile", True),
    ("C", "(A) Cecile", False),
    ("E", r"\mathrm{E}*2", False),
    (r"\$10", "10", True),
    (r"10\%", "10", True),
    (r"10\%", "0.1", True),
    (r"10\%", "0.2", False),
    ("28 percent", r"28\%", True),
    (r"30^\circ", "30", True),
    (r"30^\circ", r"\frac{\pi}{6}", True),
    (r"\sin(90^{\circ}-x)", r"\cos(x)", True),
    (r"5\text{ cm}", "5", True),
    (r"15\mbox{ cm}^2", "15", True),
    ("10 square units", "10", True),
    ("10cm", "10", False),  # could be 10c*m: a glued unit needs 3+ letters
    ("1,000", "1000", True),
    (r"1\,000", "1000", True),
    (r"11,\! 111,\! 111,\! 100", "11111111100", True),
    ("7,425,000", "7425000", True),
    ("1 000", "1000", True),
    (r"918\frac12", "918.5", True),
    ("1 1/2", "1.5", True),
    (r"-2\frac{1}{4}", "-2.25", True),
    (r"\dfrac{1}{3}", r"\tfrac13", True),
    (r"\left( \frac{1}{3} \right)", "1/3", True),
    ("5.", "5", True),
    ("185\\", "185", True),  # a dangling backslash is debris
    ("2 3", "23", False),  # spaces between digits are not thousands separators
    (r"\text{Evelyn}", "Evelyn", True),
    (r"\text{odd}", "odd", True),
    ("odd", r"\text{oddd}", False),
    ("1000,99", "1000.99", True),  # decimal comma, only against a decimal point
    ("4210_{7}", "4210_7", True),
    ("1112122_3", "1112112_3", False),
]

MATRICES_COMPLEX_PM = [
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{bmatrix}1&2\\3&4\end{bmatrix}", True),
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{pmatrix}1&2\\3&5\end{pmatrix}", False),
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{pmatrix}1&3\\2&4\end{pmatrix}", False),
    (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", "(1, 2)", True),
    (r"\begin{pmatrix} 1 & 1/2 \end{pmatrix}", r"\begin{pmatrix} 1 & 0.5 \end{pmatrix}", True),
    (
        r"\begin{pmatrix}1&2\\3&4\end{pmatrix} + \begin{pmatrix}1&0\\0&1\end{pmatrix}",
        r"\begin{pmatrix}2&2\\3&5\end{pmatrix}",
        True,
    ),
    ("3+4i", "4i+3", True),
    ("3+4i", "3-4i", False),
    ("1+2i", "i(2-i)", True),
    (r"1 \pm \sqrt{2}", r"1+\sqrt{2}, 1-\sqrt{2}", True),
    (r"1 \pm \sqrt{2}", r"1+\sqrt{2}", False),
    (r"\pm 2021", "{-2021, 2021}", True),
    (r"\frac{-1 \pm \sqrt{13}}{4}", r"\frac{-1+\sqrt{13}}{4}, \frac{-1-\sqrt{13}}{4}", True),
]

PYTHON_OUTPUTS = [
    ("Rational(1, 2)", r"\frac{1}{2}", True),
    ("Rational(1, 3)", "0.5", False),
    ("sqrt(2)/2", r"\frac{\sqrt{2}}{2}", True),
    ("1.4142135623730951", r"\sqrt{2}", True),
    ("[1, 2]", "1, 2", True),
    ("[2, 1]", "1, 2", True),
    ("{2, 3}", r"\{2, 3\}", True),
    ("(3, 4)", "(3,4)", True),
    ("(3, 4)", "(4,3)", False),
    ("True", r"\text{True}", True),
    ("False", "True", False),
    ("2*sqrt(3)", r"2\sqrt{3}", True),
    ("x**2 + 1", "x^2+1", True),
    ("I*sqrt(3)", r"i\sqrt{3}", True),
    ("-oo", r"-\infty", True),
    ("Matrix([[1, 2], [3, 4]])", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", True),
    ("[(1, 2), (3, 4)]", "(1,2),(3,4)", True),
    ("Interval(0, 1)", "[0,1]", True),
    ("Interval.open(0, 1)", "[0,1]", False),
    ("FiniteSet(1, 2)", r"\{1,2\}", True),
    ("0.3333333333333333", r"\frac{1}{3}", True),
]


@pytest.mark.parametrize("a, b, want", both_ways(EXACTNESS))
def test_exactness(a: str, b: str, want: bool) -> None:
    check(a, b, want)


@pytest.mark.parametrize("a, b, want", both_ways(NO_DROPPED_TERMS))
def test_no_dropped_terms(a: str, b: str, want: bool) -> None:
    check(a, b, want)


@pytest.mark.parametrize("a, b, want", both_ways(INTERVALS))
def test_intervals(a: str, b: str, want: bool) -> None:
    check(a, b, want)


@pytest.mark.parametrize("a, b, want", both_ways(SETS_TUPLES_LISTS))
def test_sets_tuples_lists(a: str, b: str, want: bool) -> None:
    check(a, b, want)


@pytest.mark.parametrize("a, b, want", both_ways(EQUATIONS))
def test_equations(a: str, b: str, want: bool) -> None:
    check(a, b, want)


@pytest.mark.parametrize("a, b, want", both_ways(TEXT_AND_UNITS))
def test_text_and_units(a: str, b: str, want: bool) -> None:
    check(a, b, want)


@pytest.mark.parametrize("a, b, want", both_ways(MATRICES_COMPLEX_PM))
def test_matrices_complex_pm(a: str, b: str, want: bool) -> None:
    check(a, b, want)


@pytest.mark.parametrize("a, b, want", both_ways(PYTHON_OUTPUTS))
def test_python_tool_outputs(a: str, b: str, want: bool) -> None:
    check(a, b, want)


@pytest.mark.parametrize(
    "pred, gold, words",
    [
        ("3", "4", "different values: 3 vs 4"),
        (r"\frac{1}{2}", "0.5", "equal as numbers"),
        ("x = 5", "5", "reading x = 5 as 5"),
        ("0.3333", r"\frac13", "decimals shown"),
        ("(1,2)", "(2,1)", "position 1"),
        (r"\{1,2\}", "(1,2)", "set vs ordered tuple"),
        ("2x+z=1", "1", "equation vs value"),
        ("[0,1)", "(0,1)", "different brackets"),
    ],
)
def test_reason_says_why(pred: str, gold: str, words: str) -> None:
    assert words in grade(pred, gold, extracted=True).reason


# Held-out defects (issue 12): each row is one class of answer, not one string.
HELD_OUT = [
    ("p - q", "-q + p", True),  # a difference of single letters is math, not a hyphenated word
    ("b-a", "-a+b", True),
    ("m - n", "n - m", False),
    ("u-v-w", "-w-v+u", True),
    ("x-axis", "y-axis", False),  # a hyphenated word stays a word
    ("\\text{an ellipse}", "\\text{ellipse}", True),  # a leading article does not change a word answer
    ("\\text{a parabola}", "parabola", True),
    ("the hyperbola", "\\text{hyperbola}", True),
    ("\\text{an ellipse}", "\\text{circle}", False),
    ("\\frac{d}{dx}(x^2) = 2x", "2x", True),  # an operation = its value: the value is the answer
    ("\\int_0^1 x\\,dx = \\frac12", "0.5", True),
    ("\\lim_{x\\to 0} \\frac{\\sin x}{x} = 1", "1", True),
    ("\\frac{d}{dx}(x^3) = 3x^2", "2x", False),
    ("2x + z = 1", "1", False),  # a genuine equation still is not its right side
]


@pytest.mark.parametrize("a, b, want", both_ways(HELD_OUT))
def test_held_out_defects(a: str, b: str, want: bool) -> None:
    check(a, b, want)
