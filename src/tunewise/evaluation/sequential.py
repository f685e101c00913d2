"""Sequential measurement: answer a candidate in rounds of growing size and stop once its
interval on the target's metric is clear of the target, either side.

Looking at a result several times and stopping when it looks settled would make an ordinary
95% interval too narrow. These intervals stay valid under every look by alpha spending: the
looks are fixed in advance (`looks`: 24 answers, then doubling to the whole sample), the 5% error
is split evenly between them (Bonferroni), and each look's interval is one that holds at its own
level for any sample size: Clopper-Pearson (exact) for 0/1 scores such as accuracy, the
empirical-Bernstein bound (Maurer and Pontil, 2009) for other scores in [0, 1]. By the union
bound, the interval reported where measurement stopped covers the true value with probability at
least 95%, whichever look that was (tests/unit/evaluation/test_sequential.py simulates it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import beta

from tunewise.evaluation.stats import MetricValue

FIRST_LOOK = 24  # answers before the first look: fewer say little about a rate
Settled = Literal["above the target", "below the target", "sample exhausted", "budget spent"]


@dataclass(frozen=True)
class SequentialStop:
    """Where a sequentially measured candidate stopped, and why."""

    n: int  # answers measured
    planned: int  # the whole sample it could have answered
    looks: int  # looks planned (the error is split between them)
    confidence: float  # each look's interval level, 1 - 0.05 / looks
    reason: Settled


def looks(total: int, first: int = FIRST_LOOK) -> list[int]:
    """The sample sizes looked at: `first`, doubling, and always the whole sample last."""
    sizes: list[int] = []
    n = first
    while n < total:
        sizes.append(n)
        n *= 2
    return [*sizes, total]


def look_confidence(planned_looks: int, confidence: float = 0.95) -> float:
    """Each look's level when the error `1 - confidence` is spent evenly over the looks."""
    return 1 - (1 - confidence) / planned_looks


def bounded_mean_interval(scores: Sequence[float], confidence: float) -> MetricValue:
    """An interval for the mean of scores in [0, 1] that holds at `confidence` for any n:
    Clopper-Pearson when every score is 0 or 1, else the empirical-Bernstein bound."""
    values = np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)
    n = len(values)
    if n == 0:
        raise ValueError("no scores to bound")
    mean = float(values.mean())
    alpha = 1 - confidence
    if np.all((values == 0) | (values == 1)):
        k = int(values.sum())
        low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
        high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
        return MetricValue(mean, low, high, n)
    if n < 2:
        return MetricValue(mean, 0.0, 1.0, n)
    log_term = math.log(4 / alpha)  # two sides, alpha / 2 each
    variance = float(values.var(ddof=1))
    half = math.sqrt(2 * variance * log_term / n) + 7 * log_term / (3 * (n - 1))
    return MetricValue(mean, max(0.0, mean - half), min(1.0, mean + half), n)


def settled(interval: MetricValue, target: float) -> Settled | None:
    """Whether the interval is clear of the target, and on which side (None: not yet)."""
    if interval.ci_low >= target:
        return "above the target"
    if interval.ci_high < target:
        return "below the target"
    return None
