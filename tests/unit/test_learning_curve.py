"""Learning-curve fit and the examples-needed estimate, on synthetic curves with known answers."""

from __future__ import annotations

import json
import math

import pytest

from tunewise.measuring.learning_curve import (
    PRIOR_RATES,
    CurvePoint,
    estimate_examples,
    fit_curve,
    forecast,
)

CEILING, SCALE, RATE = 0.9, 2.0, 0.5
SIZES = (50, 100, 250, 500, 1000)


def true_value(x: float) -> float:
    return CEILING - SCALE * x**-RATE


def curve(half_width: float = 0.01, sizes: tuple[int, ...] = SIZES) -> list[CurvePoint]:
    """Noiseless points on the known curve, each with a symmetric CI of the given half-width."""
    return [
        CurvePoint(x, true_value(x), true_value(x) - half_width, true_value(x) + half_width, 300)
        for x in sizes
    ]


def closed_form(target: float) -> float:
    return (SCALE / (CEILING - target)) ** (1 / RATE)


def sig2(n: int) -> str:
    """n rounded to two significant figures with thousands separators, as summaries print it."""
    digits = len(str(n))
    return f"{round(n, 2 - digits) if digits > 2 else n:,}"


def test_fit_recovers_known_parameters() -> None:
    ceiling, scale, rate = fit_curve(curve())
    assert ceiling == pytest.approx(CEILING, abs=0.01)
    assert scale == pytest.approx(SCALE, abs=0.1)
    assert rate == pytest.approx(RATE, abs=0.05)


def test_fit_accepts_repeated_sizes() -> None:
    # Two seeds per size, straddling the curve: the fit should land on the curve between them.
    points = [
        CurvePoint(x, true_value(x) + d, true_value(x) + d - 0.02, true_value(x) + d + 0.02, 300)
        for x in SIZES
        for d in (-0.01, 0.01)
    ]
    ceiling, scale, rate = fit_curve(points)
    assert (ceiling, scale, rate) == pytest.approx((CEILING, SCALE, RATE), abs=0.1)
    assert ceiling == pytest.approx(CEILING, abs=0.01)


def test_narrow_cis_pull_the_fit_harder() -> None:
    # One point sits 0.03 above the curve; its CI decides how far the fit bends toward it.
    def residual(half_width: float) -> float:
        points = [p for p in curve(half_width=0.05) if p.examples != 250]
        v = true_value(250) + 0.03
        points.append(CurvePoint(250, v, v - half_width, v + half_width, 300))
        return abs(estimate_examples(points, None, resamples=1).predict(250) - v)

    assert residual(0.01) < residual(0.05) / 2


def test_zero_width_ci_does_not_get_infinite_weight() -> None:
    # All correct at one size gives a zero-width bootstrap CI; the fit must not pass through it.
    points = curve(half_width=0.01)
    v = true_value(1000) + 0.03
    points.append(CurvePoint(1000, v, v, v, 300))
    fit = estimate_examples(points, None, resamples=1)
    assert abs(fit.predict(1000) - v) > 0.005


def test_examples_needed_matches_closed_form() -> None:
    fit = estimate_examples(curve(), 0.85, metric="accuracy")
    assert fit.reachable == "likely"
    assert fit.examples_needed == pytest.approx(closed_form(0.85), rel=0.05)
    assert fit.examples_needed_low is not None and fit.examples_needed_high is not None
    assert fit.examples_needed_low < fit.examples_needed < fit.examples_needed_high
    assert fit.predict(closed_form(0.85)) == pytest.approx(0.85, abs=0.005)


def test_target_above_ceiling_is_unlikely() -> None:
    fit = estimate_examples(curve(), 0.95, metric="accuracy")
    assert fit.reachable == "unlikely"
    assert fit.examples_needed is None
    assert fit.examples_needed_high is None
    assert fit.ceiling_high < 0.95
    assert "out of reach" in fit.summary


def test_beyond_max_examples_counts_as_unreachable() -> None:
    # 0.85 needs about 1,600 examples; capped at 1,000 it is out of reach even below the ceiling.
    fit = estimate_examples(curve(), 0.85, max_examples=1000, metric="accuracy")
    assert fit.reachable == "unlikely"
    assert fit.examples_needed is None and fit.examples_needed_high is None
    assert "within 1,000 training examples" in fit.summary


def test_already_reached_reports_smallest_size() -> None:
    # Given out of order: 250 is the smallest size at or above 0.75 (0.7735; 100 gives 0.70).
    fit = estimate_examples(list(reversed(curve())), 0.75, metric="accuracy")
    assert fit.reachable == "reached"
    assert fit.examples_needed == 250
    assert "250" in fit.summary and "0.774" in fit.summary


def test_one_size_is_too_few_points() -> None:
    points = curve(sizes=(100,)) + curve(sizes=(100,), half_width=0.02)  # two points, one size
    fit = estimate_examples(points, 0.85)
    assert fit.reachable == "too-few-points"
    assert fit.examples_needed is None and fit.examples_needed_high is None
    assert math.isnan(fit.ceiling)
    assert "measured 1" in fit.summary and "1 more" in fit.summary
    with pytest.raises(ValueError, match="no curve"):
        fit.predict(1000)
    with pytest.raises(ValueError, match="distinct"):
        fit_curve(points)
    assert forecast(points, 2000) is None


def test_two_sizes_forecast_with_the_rates_prior_and_cover_the_truth() -> None:
    # Two sizes cannot pin the rate: each refit draws it from PRIOR_RATES, so the forecast's
    # interval is wide, and it holds the true curve's value (rate 0.5 lies inside the prior).
    points = curve(sizes=(40, 140), half_width=0.05)
    predicted = forecast(points, 2000)
    assert predicted is not None
    assert predicted.low <= true_value(2000) <= predicted.high
    assert predicted.high - predicted.low > 0.05  # an extrapolation from two sizes: a range
    fit = estimate_examples(points, 0.85)
    assert fit.reachable in {"likely", "uncertain", "unlikely"}
    low, high = PRIOR_RATES
    assert f"rate is drawn from {low:g}-{high:g}" in fit.summary


def test_no_target_still_fits_the_ceiling() -> None:
    fit = estimate_examples(curve(), None)
    assert fit.reachable == "no-target"
    assert fit.examples_needed is None
    assert fit.ceiling == pytest.approx(CEILING, abs=0.01)
    assert f"{fit.ceiling:.3f}" in fit.summary


def test_wide_cis_give_a_wider_interval_than_narrow_cis() -> None:
    narrow = estimate_examples(curve(half_width=0.005), 0.85)
    wide = estimate_examples(curve(half_width=0.02), 0.85)
    # Same values, uniformly scaled weights: the same point fit, only the spread differs.
    assert narrow.examples_needed == wide.examples_needed
    assert narrow.examples_needed_high is not None and wide.examples_needed_high is not None
    assert narrow.examples_needed_low is not None and wide.examples_needed_low is not None
    narrow_width = narrow.examples_needed_high - narrow.examples_needed_low
    wide_width = wide.examples_needed_high - wide.examples_needed_low
    assert wide_width > 1.5 * narrow_width
    assert wide.ceiling_high - wide.ceiling_low > narrow.ceiling_high - narrow.ceiling_low


def test_deterministic_for_a_seed() -> None:
    points = curve(half_width=0.03)
    first = estimate_examples(points, 0.85, seed=7)
    assert estimate_examples(points, 0.85, seed=7) == first
    other = estimate_examples(points, 0.85, seed=8)
    assert (other.examples_needed_low, other.ceiling_low) != (
        first.examples_needed_low,
        first.ceiling_low,
    )


def test_ceiling_never_exceeds_one() -> None:
    # Near-perfect scores, the last with a zero-width CI (all correct): the floor on the CI
    # keeps its weight finite and the constraint keeps the ceiling at or below 1.
    values = [(100, 0.97, 0.95, 0.99), (250, 0.985, 0.97, 1.0), (500, 0.995, 0.985, 1.0)]
    points = [CurvePoint(x, v, lo, hi, 200) for x, v, lo, hi in values]
    points.append(CurvePoint(1000, 1.0, 1.0, 1.0, 200))
    ceiling, scale, _ = fit_curve(points)
    assert ceiling <= 1.0 and scale >= 0.0
    fit = estimate_examples(points, None)
    assert fit.ceiling <= 1.0 and fit.ceiling_high <= 1.0


def test_quality_never_falls_with_more_data() -> None:
    # Decreasing measurements: scale >= 0 forces a flat fit at their weighted mean.
    points = [CurvePoint(x, v, v - 0.02, v + 0.02, 300) for x, v in [(100, 0.8), (300, 0.78)]]
    points.append(CurvePoint(1000, 0.76, 0.74, 0.78, 300))
    ceiling, scale, _ = fit_curve(points)
    assert scale == 0.0
    assert ceiling == pytest.approx(0.78, abs=1e-9)


def test_to_dict_is_json_serialisable() -> None:
    for fit in (estimate_examples(curve(), 0.85), estimate_examples(curve(sizes=(100,)), 0.85)):
        data = json.loads(json.dumps(fit.to_dict(), allow_nan=False))
        assert data["reachable"] == fit.reachable
        assert data["examples_needed"] == fit.examples_needed
        assert len(data["points"]) == len(fit.points)
    data = estimate_examples(curve(), 0.85).to_dict()
    assert data["ceiling"] == round(data["ceiling"], 4) and data["ceiling"] is not None


def test_summary_states_the_numbers() -> None:
    fit = estimate_examples(curve(), 0.85, metric="accuracy")
    assert fit.examples_needed is not None
    assert fit.examples_needed_low is not None and fit.examples_needed_high is not None
    assert fit.summary.startswith(f"About {sig2(fit.examples_needed)} examples")
    assert f"{sig2(fit.examples_needed_low)}-{sig2(fit.examples_needed_high)}" in fit.summary
    assert "accuracy 0.85" in fit.summary
    assert f"ceiling is {fit.ceiling:.3f}" in fit.summary


def test_rejects_a_reversed_ci() -> None:
    with pytest.raises(ValueError, match="ci_low"):
        estimate_examples([CurvePoint(100, 0.5, 0.6, 0.4, 50)], 0.8)
