"""Paired significance for two runs scored on the same examples.

Why paired: both runs answer the same inputs, so the question is whether the per-example
differences are more than noise. For right/wrong scores that is McNemar's exact test (only the
examples that flipped carry information); for graded scores (token F1, field F1) a paired
bootstrap of the mean difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest


@dataclass(frozen=True)
class PairedTest:
    """B's mean score minus A's on the same n examples, with a two-sided p-value."""

    test: str  # "mcnemar" | "paired-bootstrap"
    a: float
    b: float
    n: int
    p_value: float
    ci_low: float  # 95% interval of the difference
    ci_high: float
    fixed: int = 0  # right/wrong scores: wrong in A, right in B
    broken: int = 0  # right in A, wrong in B

    @property
    def delta(self) -> float:
        return self.b - self.a


def is_binary(values: np.ndarray) -> bool:
    return bool(np.isin(values, (0.0, 1.0)).all())


def mcnemar(a: Sequence[float], b: Sequence[float], *, seed: int = 0) -> PairedTest:
    """Exact McNemar test on right(1)/wrong(0) scores: under no change, each flip is equally
    likely to go either way, so the smaller count of the two is binomial(flips, 1/2)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    fixed = int(((x == 0) & (y == 1)).sum())
    broken = int(((x == 1) & (y == 0)).sum())
    flips = fixed + broken
    p = 1.0 if flips == 0 else float(binomtest(fixed, flips, 0.5).pvalue)
    low, high = _bootstrap_delta(x, y, seed)
    return PairedTest("mcnemar", float(x.mean()), float(y.mean()), len(x), p, low, high,
                      fixed, broken)  # fmt: skip


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], *, seed: int = 0, resamples: int = 2000
) -> PairedTest:
    """Paired bootstrap of the mean difference; p is twice the share of resampled differences
    on the far side of zero (with the usual +1 correction, so it is never exactly 0)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    deltas = _resampled_deltas(x, y, seed, resamples)
    observed = float((y - x).mean())
    if observed == 0 and not deltas.any():
        p = 1.0
    else:
        beyond = (deltas <= 0).sum() if observed > 0 else (deltas >= 0).sum()
        p = min(1.0, 2 * (int(beyond) + 1) / (resamples + 1))
    low, high = np.quantile(deltas, [0.025, 0.975])
    return PairedTest("paired-bootstrap", float(x.mean()), float(y.mean()), len(x), p,
                      float(low), float(high))  # fmt: skip


def paired_test(a: Sequence[float], b: Sequence[float], *, seed: int = 0) -> PairedTest:
    """McNemar for right/wrong scores, the paired bootstrap otherwise."""
    if len(a) != len(b) or not len(a):
        raise ValueError(f"paired scores need equal, non-zero lengths, got {len(a)} and {len(b)}")
    both = np.concatenate([np.asarray(a, dtype=float), np.asarray(b, dtype=float)])
    return mcnemar(a, b, seed=seed) if is_binary(both) else paired_bootstrap(a, b, seed=seed)


def _resampled_deltas(x: np.ndarray, y: np.ndarray, seed: int, resamples: int) -> np.ndarray:
    rows = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    return np.asarray((y - x)[rows].mean(axis=1))


def _bootstrap_delta(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[float, float]:
    low, high = np.quantile(_resampled_deltas(x, y, seed, 2000), [0.025, 0.975])
    return float(low), float(high)
