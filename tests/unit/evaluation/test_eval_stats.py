from __future__ import annotations

import numpy as np
import pytest

from tunewise.evaluation.stats import MetricValue, bootstrap_ci, mean_with_ci


def _bernoulli(n: int, p: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(float)


def test_metric_value_to_dict_rounds() -> None:
    value = MetricValue(2 / 3, 0.123456, 0.987654, 12)
    assert value.to_dict() == {"value": 0.6667, "ci_low": 0.1235, "ci_high": 0.9877, "n": 12}


def test_metric_value_is_frozen() -> None:
    value = MetricValue(0.5, 0.4, 0.6, 10)
    with pytest.raises(AttributeError):
        value.value = 1.0  # type: ignore[misc]


def test_ci_contains_point_estimate_for_typical_data() -> None:
    values = _bernoulli(200, 0.7)
    result = mean_with_ci(values, seed=1)
    assert result.ci_low < result.value < result.ci_high
    assert result.value == pytest.approx(values.mean())
    assert result.n == 200
    # a statistic that is not a mean: the standard deviation
    low, high = bootstrap_ci(lambda idx: float(values[idx].std()), 200, seed=1)
    assert low < float(values.std()) < high


def test_ci_narrows_as_n_grows() -> None:
    small = mean_with_ci(_bernoulli(30, 0.6), seed=0)
    large = mean_with_ci(_bernoulli(3000, 0.6), seed=0)
    assert large.ci_high - large.ci_low < (small.ci_high - small.ci_low) / 4


def test_ci_width_is_about_the_normal_approximation() -> None:
    # A sanity anchor on scale: 95% half-width ~ 1.96 * sqrt(p(1-p)/n) for a proportion.
    values = _bernoulli(1000, 0.5, seed=3)
    result = mean_with_ci(values, seed=0)
    p = values.mean()
    expected = 2 * 1.96 * np.sqrt(p * (1 - p) / len(values))
    assert result.ci_high - result.ci_low == pytest.approx(expected, rel=0.15)


def test_deterministic_for_a_seed_and_differs_across_seeds() -> None:
    values = _bernoulli(50, 0.5)
    assert mean_with_ci(values, seed=4) == mean_with_ci(values, seed=4)
    assert mean_with_ci(values, seed=4) != mean_with_ci(values, seed=5)

    def stat(idx: np.ndarray) -> float:
        return float(values[idx].mean())

    assert bootstrap_ci(stat, 50, seed=4) == bootstrap_ci(stat, 50, seed=4)
    assert bootstrap_ci(stat, 50, seed=4) != bootstrap_ci(stat, 50, seed=5)


def test_degenerate_all_correct_vector() -> None:
    result = mean_with_ci(np.ones(40), seed=0)
    assert (result.value, result.ci_low, result.ci_high) == (1.0, 1.0, 1.0)
    assert bootstrap_ci(lambda idx: float(np.ones(40)[idx].mean()), 40, seed=0) == (1.0, 1.0)


def test_vectorised_mean_agrees_with_generic_bootstrap() -> None:
    values = _bernoulli(150, 0.35, seed=9) * np.linspace(0.2, 1.0, 150)
    fast = mean_with_ci(values, seed=11)
    low, high = bootstrap_ci(lambda idx: float(values[idx].mean()), 150, seed=11)
    assert fast.ci_low == pytest.approx(low, abs=0.02)
    assert fast.ci_high == pytest.approx(high, abs=0.02)


def test_statistic_receives_index_arrays_of_length_n() -> None:
    seen: list[np.ndarray] = []

    def stat(idx: np.ndarray) -> float:
        seen.append(idx)
        return 0.0

    bootstrap_ci(stat, 7, seed=0, resamples=25)
    assert len(seen) == 25
    assert all(idx.shape == (7,) and idx.min() >= 0 and idx.max() < 7 for idx in seen)
    assert len({tuple(idx) for idx in seen}) > 1  # drawn with replacement, not one fixed order


def test_single_example_gives_a_point_interval() -> None:
    assert bootstrap_ci(lambda idx: 0.25 + float(idx.sum()), 1, seed=0) == (0.25, 0.25)
    assert mean_with_ci(np.array([0.4]), seed=0) == MetricValue(0.4, 0.4, 0.4, 1)


def test_empty_and_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci(lambda idx: 0.0, 0, seed=0)
    with pytest.raises(ValueError, match="empty"):
        mean_with_ci(np.array([]), seed=0)
    with pytest.raises(ValueError, match="confidence"):
        mean_with_ci(np.ones(3), seed=0, confidence=1.5)
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_ci(lambda idx: 0.0, 3, seed=0, resamples=0)


def test_lower_confidence_gives_a_narrower_interval() -> None:
    values = _bernoulli(100, 0.5)
    wide = mean_with_ci(values, seed=0, confidence=0.95)
    narrow = mean_with_ci(values, seed=0, confidence=0.5)
    assert wide.ci_low < narrow.ci_low < narrow.ci_high < wide.ci_high
