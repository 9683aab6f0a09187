"""The statistics against published values and hand computations (never against the code itself)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from tir_harness.analysis import stats

Z = 1.959963984540054


# Newcombe (1998), "Two-sided confidence intervals for the single proportion: comparison of seven methods",
# Statistics in Medicine 17:857-872, Table II, method 3 (Wilson score interval without continuity correction).
@pytest.mark.parametrize(
    ("x", "n", "lower", "upper"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_matches_newcombe_1998(x: int, n: int, lower: float, upper: float) -> None:
    lo, hi = stats.wilson_interval(x, n)
    assert lo == pytest.approx(lower, abs=6e-5)
    assert hi == pytest.approx(upper, abs=6e-5)


@pytest.mark.parametrize(("x", "n"), [(3, 10), (50, 100), (1, 1000), (2.5, 7)])
def test_wilson_bounds_solve_the_score_equation(x: float, n: int) -> None:
    # The Wilson interval is the set of p with |x/n - p| <= z * sqrt(p (1 - p) / n): its ends are the roots.
    lo, hi = stats.wilson_interval(x, n)
    assert lo < x / n < hi
    for p in (lo, hi):
        assert abs(x / n - p) == pytest.approx(Z * math.sqrt(p * (1 - p) / n), rel=1e-9)


def test_wilson_edges() -> None:
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)
    assert stats.wilson_interval(0, 10)[0] == 0.0
    assert stats.wilson_interval(10, 10)[1] == 1.0
    # At 10/10 the lower bound is n / (n + z^2).
    assert stats.wilson_interval(10, 10)[0] == pytest.approx(10 / (10 + Z * Z))
    with pytest.raises(ValueError):
        stats.wilson_interval(11, 10)
    with pytest.raises(ValueError):
        stats.wilson_interval(-1, 10)


# pass@k = 1 - C(n-c, k) / C(n, k) (Chen et al. 2021), worked out by hand.
@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 1, 2 / 5),
        (5, 2, 2, 1 - 3 / 10),  # C(3,2)=3, C(5,2)=10
        (10, 3, 3, 1 - 35 / 120),  # C(7,3)=35, C(10,3)=120
        (5, 2, 4, 1.0),  # fewer than k wrong samples: some k-subset always holds a correct one
        (10, 0, 5, 0.0),
        (10, 10, 1, 1.0),
        (100, 1, 1, 0.01),
        (4, 2, 2, 1 - 1 / 6),  # C(2,2)=1, C(4,2)=6
    ],
)
def test_pass_at_k_hand_values(n: int, c: int, k: int, expected: float) -> None:
    assert stats.pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(5, 6, 1), (5, 2, 0), (5, 2, 6), (3, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        stats.pass_at_k(n, c, k)


def test_maj_at_k_votes_and_ties() -> None:
    votes = [("3", False), ("2", True), ("3", False)]
    assert stats.maj_at_k(votes, 3) == 0.0  # "3" wins 2 to 1
    assert stats.maj_at_k(votes, 2) == 0.5  # one each: a coin flip
    assert stats.maj_at_k(votes, 1) == 0.0
    # Correct answers written differently are one answer; no answer does not vote.
    assert stats.maj_at_k([("1/2", True), ("0.5", True), ("7", False)], 3) == 1.0
    assert stats.maj_at_k([(None, False), (None, False), ("2", True)], 3) == 1.0
    assert stats.maj_at_k([(None, False), (None, False)], 2) == 0.0
    # Three-way tie with the correct answer among the leaders.
    assert stats.maj_at_k([("a", False), ("b", False), ("c", True)], 3) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        stats.maj_at_k(votes, 4)


def test_mcnemar_matches_fagerland_cavo_2012() -> None:
    # Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency Tables" (2017), chapter 8: the
    # Cavo et al. (2012) table [[59, 6], [16, 80]], McNemar exact conditional test P = 0.052479.
    assert stats.mcnemar_exact(6, 16) == pytest.approx(0.052479, abs=5e-7)


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [
        (0, 5, 2 / 32),  # 2 * P(X = 0), X ~ Bin(5, 1/2)
        (1, 9, 2 * (1 + 10) / 1024),  # 2 * (C(10,0) + C(10,1)) / 2^10
        (2, 15, 2 * (1 + 17 + 136) / 2**17),
        (9, 1, 2 * (1 + 10) / 1024),  # symmetric
        (4, 4, 1.0),
        (0, 0, 1.0),
        (0, 1, 1.0),
    ],
)
def test_mcnemar_hand_values(b: int, c: int, expected: float) -> None:
    assert stats.mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_large_counts_agree_with_exact_fractions() -> None:
    # Past the exact-integer limit the sum runs in log space; check it against exact rational arithmetic.
    for b, c in ((2400, 2601), (2450, 2650)):
        n = b + c
        exact = Fraction(2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)), 2**n)
        assert stats.mcnemar_exact(b, c) == pytest.approx(float(exact), rel=1e-9)


def test_paired_difference_matches_fagerland_cavo_2012() -> None:
    # Same table and book: Newcombe square-and-add interval, estimate -0.0621, 95% CI -0.1186 to -0.0046.
    diff, lo, hi = stats.paired_difference(59, 6, 16, 80)
    assert diff == pytest.approx((6 - 16) / 161)
    assert lo == pytest.approx(-0.1186, abs=6e-5)
    assert hi == pytest.approx(-0.0046, abs=6e-5)


def test_paired_difference_is_antisymmetric() -> None:
    diff, lo, hi = stats.paired_difference(40, 12, 5, 43)
    mdiff, mlo, mhi = stats.paired_difference(40, 5, 12, 43)
    assert (mdiff, mlo, mhi) == pytest.approx((-diff, -hi, -lo))
    assert lo < diff < hi


def test_paired_difference_edges() -> None:
    assert stats.paired_difference(0, 0, 0, 0) == (0.0, -1.0, 1.0)
    diff, lo, hi = stats.paired_difference(10, 0, 0, 10)  # no discordant pairs
    assert diff == 0.0 and -1.0 <= lo < 0.0 < hi <= 1.0
    diff, lo, hi = stats.paired_difference(0, 20, 0, 0)  # every pair flipped one way
    assert diff == 1.0 and 0.0 < lo and hi == 1.0
    with pytest.raises(ValueError):
        stats.paired_difference(1, -1, 0, 0)


def test_powers_of_two_upto() -> None:
    assert stats.powers_of_two_upto(0) == []
    assert stats.powers_of_two_upto(1) == [1]
    assert stats.powers_of_two_upto(8) == [1, 2, 4, 8]
    assert stats.powers_of_two_upto(6) == [1, 2, 4, 6]
