"""Confidence intervals for metrics by the percentile bootstrap.

Why the percentile bootstrap: it assumes no normal sampling distribution, so it stays honest
for proportions near 0 or 1 on small test sets, and it works for any statistic of the examples,
including macro-F1 and micro field-F1, which are not means of per-example scores and have no
simple standard-error formula. Resampling is seeded, so a run's intervals are reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MetricValue:
    """A metric's point estimate on n examples with its bootstrap confidence interval."""

    value: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return {
            "value": round(self.value, 4),
            "ci_low": round(self.ci_low, 4),
            "ci_high": round(self.ci_high, 4),
            "n": self.n,
        }


def _check_args(n: int, resamples: int, confidence: float) -> None:
    if n <= 0:
        raise ValueError("cannot bootstrap an empty sample (n == 0)")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def _resample_indices(n: int, seed: int, resamples: int) -> np.ndarray:
    # Both paths draw the same (resamples, n) matrix, so for one seed they agree exactly.
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _percentiles(estimates: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(estimates, [tail, 1 - tail])
    return float(low), float(high)


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n: int,
    *,
    seed: int,
    resamples: int = 1000,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of statistic over n examples.

    statistic receives an index array of length n (drawn with replacement) and returns the
    metric computed on those examples. Deterministic for a seed. n == 1 gives (value, value).
    """
    _check_args(n, resamples, confidence)
    if n == 1:
        value = float(statistic(np.zeros(1, dtype=np.int64)))
        return value, value
    indices = _resample_indices(n, seed, resamples)
    estimates = np.array([statistic(row) for row in indices], dtype=float)
    return _percentiles(estimates, confidence)


def mean_with_ci(
    values: np.ndarray,
    *,
    seed: int,
    resamples: int = 1000,
    confidence: float = 0.95,
) -> MetricValue:
    """Mean of per-example scores with its percentile bootstrap interval, vectorised."""
    scores = np.asarray(values, dtype=float)
    if scores.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {scores.shape}")
    n = len(scores)
    _check_args(n, resamples, confidence)
    value = float(scores.mean())
    if n == 1:
        return MetricValue(value, value, value, 1)
    estimates = scores[_resample_indices(n, seed, resamples)].mean(axis=1)
    low, high = _percentiles(estimates, confidence)
    return MetricValue(value, low, high, n)
