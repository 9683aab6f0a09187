"""Small, dependency-free statistics for evaluation reports.

Everything here is a pure function of counts, exact where it is cheap to be exact:

- `wilson_interval`: the Wilson score interval for one proportion (Wilson 1927), which keeps its coverage
  near 0 and 1 and for small n, where the textbook Wald interval does not.
- `pass_at_k`: the unbiased estimator of Chen et al. (2021, "Evaluating Large Language Models Trained on
  Code"): 1 - C(n-c, k) / C(n, k) for n samples of which c are correct.
- `maj_at_k`: majority vote over k sampled answers, ties split evenly.
- `mcnemar_exact`: McNemar's exact test, i.e. a two-sided binomial test of the discordant pairs against 1/2.
- `paired_difference`: the difference of two paired proportions with Newcombe's (1998) method 10 interval
  ("square-and-add" of two Wilson intervals, with the continuity-corrected correlation phi), as tabulated in
  Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency Tables" (2017), chapter 8.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from fractions import Fraction

# Two-sided 95%: the 0.975 quantile of the standard normal.
Z95 = 1.959963984540054

# Above this many discordant pairs the exact binomial sum switches from integers to log space, where its
# relative error (~1e-12) is far below anything a p-value is used for and the cost stays linear.
_EXACT_LIMIT = 5000


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for `successes` out of `n`.

    `successes` may be fractional (a mean of per-problem fractions times n); with n == 0 nothing is known
    and the interval is the whole of [0, 1].
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"wilson_interval: need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # At p == 0 or 1 the bound is exactly 0 or 1; rounding would leave it a hair off.
    lower = 0.0 if successes == 0 else max(0.0, centre - half)
    upper = 1.0 if successes == n else min(1.0, centre + half)
    return (lower, upper)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with `n` samples, `c` of them correct."""
    if not (0 <= c <= n) or not (1 <= k <= n):
        raise ValueError(f"pass_at_k: need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    # The product form of C(n-c, k) / C(n, k) avoids huge binomials.
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def maj_at_k(votes: Sequence[tuple[Hashable | None, bool]], k: int) -> float:
    """Majority-vote accuracy over the first `k` of `votes`, each (answer key, correct).

    Answers with key None (no answer) do not vote.  All correct answers count as one answer (they all
    equal the gold answer, so a grader-aware vote would merge them); wrong answers vote by their key.  A tie
    among the most frequent answers is split evenly, so the result is the expected accuracy of a random
    tie-break: 1/t if the correct answer is one of t tied leaders, else 0.
    """
    if not 1 <= k <= len(votes):
        raise ValueError(f"maj_at_k: need 1 <= k <= {len(votes)} votes, got k={k}")
    counts: dict[tuple[bool, Hashable], int] = {}
    for key, correct in votes[:k]:
        if key is None and not correct:
            continue
        cluster = (True, None) if correct else (False, key)
        counts[cluster] = counts.get(cluster, 0) + 1
    if not counts:
        return 0.0
    top = max(counts.values())
    leaders = [cluster for cluster, count in counts.items() if count == top]
    return 1.0 / len(leaders) if (True, None) in leaders else 0.0


def binomial_two_sided_half(k: int, n: int) -> float:
    """Two-sided exact p-value of `k` successes in `n` trials under p = 1/2 (doubling the smaller tail)."""
    if not 0 <= k <= n:
        raise ValueError(f"binomial test: need 0 <= k <= n, got k={k} n={n}")
    if n == 0:
        return 1.0
    m = min(k, n - k)
    if 2 * m == n:
        return 1.0
    if n <= _EXACT_LIMIT:
        term = 1
        total = 0
        for i in range(m + 1):
            total += term
            term = term * (n - i) // (i + 1)
        tail = Fraction(total, 2**n)
        return float(min(Fraction(1), 2 * tail))
    log_terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(m + 1)
    ]
    top = max(log_terms)
    log_tail = top + math.log(sum(math.exp(t - top) for t in log_terms))
    return min(1.0, 2 * math.exp(log_tail))


def mcnemar_exact(b: int, c: int) -> float:
    """Exact McNemar p-value (two-sided) from the discordant counts b and c of a paired 2x2 table."""
    if b < 0 or c < 0:
        raise ValueError(f"mcnemar_exact: discordant counts must be >= 0, got {b} and {c}")
    return binomial_two_sided_half(b, b + c)


def paired_difference(
    both: int, first_only: int, second_only: int, neither: int, z: float = Z95
) -> tuple[float, float, float]:
    """p1 - p2 for two paired proportions and its Newcombe (1998, method 10) interval.

    The table: `both` pairs succeed in both, `first_only` only in the first, `second_only` only in the
    second, `neither` in neither.  Returns (difference, lower, upper).  With no pairs nothing is known:
    (0.0, -1.0, 1.0).
    """
    cells = (both, first_only, second_only, neither)
    if min(cells) < 0:
        raise ValueError(f"paired_difference: counts must be >= 0, got {cells}")
    n = sum(cells)
    if n == 0:
        return (0.0, -1.0, 1.0)
    first, second = both + first_only, both + second_only
    p1, p2 = first / n, second / n
    diff = (first_only - second_only) / n
    l1, u1 = wilson_interval(first, n, z)
    l2, u2 = wilson_interval(second, n, z)
    # phi estimates the correlation of the two proportions; Newcombe shrinks a positive one by n/2
    # (a continuity correction) and drops it when a margin is empty.
    phi = 0.0
    margins = (first, n - first, second, n - second)
    if min(margins) > 0:
        cross = both * neither - first_only * second_only
        if cross > n / 2:
            phi = (cross - n / 2) / math.sqrt(math.prod(margins))
        elif cross < 0:
            phi = cross / math.sqrt(math.prod(margins))
    d1, e2 = p1 - l1, u2 - p2
    e1, d2 = u1 - p1, p2 - l2
    lower = diff - math.sqrt(max(0.0, d1 * d1 - 2 * phi * d1 * e2 + e2 * e2))
    upper = diff + math.sqrt(max(0.0, e1 * e1 - 2 * phi * e1 * d2 + d2 * d2))
    return (diff, max(-1.0, lower), min(1.0, upper))


def powers_of_two_upto(n: int) -> list[int]:
    """1, 2, 4, ... up to n, plus n itself: the k values reported for pass@k and maj@k."""
    ks: list[int] = []
    k = 1
    while k <= n:
        ks.append(k)
        k *= 2
    if n >= 1 and ks[-1] != n:
        ks.append(n)
    return ks
