"""The grader's tunable constants, in one frozen object (documented in docs/grading.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GraderConfig:
    # Wall-clock budget for one comparison; past it the verdict is "timeout" (checked cooperatively).
    timeout_s: float = 2.0
    # A decimal is taken as the rounded value it shows (0.333 stands for [0.3325, 0.3335]); it may stand for
    # an exact value only if that rounding error is at most this fraction of the value (about 4 digits).
    min_relative_precision: float = 1e-3
    # Floating-point noise allowed whenever one side is a decimal (Python's 1.4142135623730951 for sqrt(2)).
    float_noise: float = 1e-10
    # Working precision of the numeric evaluator, in bits; constants that agree at it are checked again at
    # `confirm_precision_bits` before they count as exactly equal.
    precision_bits: int = 256
    confirm_precision_bits: int = 4096
    # Exact integers/fractions above this many bits are evaluated as high-precision floats instead.
    max_exact_bits: int = 20_000
    # Values whose binary exponent exceeds this are "too large to evaluate" (then compared by structure).
    max_exponent_bits: int = 2**40
    # Bare answers longer than this, or nested deeper, are compared as text only.
    max_answer_chars: int = 2_000
    max_depth: int = 40
    # Terms evaluated for \sum / \prod with numeric bounds.
    max_series_terms: int = 1_000


DEFAULT_CONFIG = GraderConfig()
