"""Sequential measurement keeps its 95% promise: over many simulated candidates stopped at the
first look whose interval clears the target, the reported intervals cover the truth."""

from __future__ import annotations

import numpy as np
import pytest

from tunewise.evaluation.sequential import (
    bounded_mean_interval,
    look_confidence,
    looks,
    settled,
)


def measure_sequentially(draws: np.ndarray, target: float) -> tuple[float, float, int, str]:
    """The ladder's loop on one candidate's pre-drawn per-example scores."""
    planned = looks(len(draws))
    level = look_confidence(len(planned))
    for n in planned:
        interval = bounded_mean_interval(draws[:n], level)
        reason = settled(interval, target)
        if reason is not None or n == len(draws):
            return interval.ci_low, interval.ci_high, n, reason or "sample exhausted"
    raise AssertionError("the last look is the whole sample")


def test_the_looks_double_from_24_to_the_whole_sample() -> None:
    assert looks(144) == [24, 48, 96, 144]
    assert looks(20) == [20]
    assert looks(48) == [24, 48]
    assert look_confidence(4) == pytest.approx(0.9875)


@pytest.mark.parametrize("kind", ["accuracy", "graded"])
def test_reported_intervals_cover_the_truth_over_1000_candidates(kind: str) -> None:
    rng = np.random.default_rng(7)
    target, covered, answers = 0.7, 0, []
    for _ in range(1000):
        truth = rng.uniform(0.02, 0.98)
        if kind == "accuracy":
            draws = (rng.random(300) < truth).astype(float)
        else:  # scores in [0, 1] with mean `truth`, like token F1
            draws = rng.beta(4 * truth, 4 * (1 - truth), 300)
        low, high, n, _ = measure_sequentially(draws, target)
        covered += low <= truth <= high
        answers.append(n)
    assert covered / 1000 >= 0.95
    # And it pays: most candidates are settled long before the whole sample.
    assert float(np.median(answers)) <= 96


def test_a_candidate_far_below_the_target_costs_a_few_dozen_answers() -> None:
    draws = np.array([1.0] * 10 + [0.0] * 290)  # accuracy 0.03
    np.random.default_rng(0).shuffle(draws)
    _, high, n, reason = measure_sequentially(draws, 0.9)
    assert (n, reason) == (24, "below the target") and high < 0.9


def test_clopper_pearson_for_all_right_and_all_wrong() -> None:
    right = bounded_mean_interval([1.0] * 24, 0.99)
    assert right.value == 1.0 and right.ci_high == 1.0 and 0.7 < right.ci_low < 1.0
    wrong = bounded_mean_interval([0.0] * 24, 0.99)
    assert wrong.ci_low == 0.0 and 0.0 < wrong.ci_high < 0.3
