"""Learning-curve extrapolation: how many training examples until fine-tuning reaches the target.

The fine-tuning arm measures test quality at a few training-set sizes. We fit the inverse power
law value(x) = ceiling - scale * x**-rate, the usual learning-curve shape (steep at first, then
flattening toward a ceiling), and solve it for the target. Uncertainty comes from a parametric
bootstrap: each point is redrawn from a normal matching its CI and the curve refitted, so wide
CIs give wide intervals. numpy only: a grid over rate, and at each rate a closed-form weighted
least squares for (ceiling, scale), which is linear once rate is fixed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

_RATES = np.geomspace(0.05, 2.0, 200)
_Z95 = 1.959964
_MIN_SD = 0.005  # a zero-width CI (all right or all wrong) must not get infinite weight
_MIN_SIZES = 2  # two sizes with the rate's prior; three or more fit all three parameters
# Two sizes cannot pin three parameters: each refit then draws the rate log-uniformly from the
# range learning curves of fine-tuned classifiers usually show, so the interval carries that
# uncertainty too (the point fit takes the range's geometric middle).
PRIOR_RATES = (0.1, 1.0)
_QUANTILES = (0.1, 0.9)  # 80% interval: the tails of a 4-point extrapolation are very wide


@dataclass(frozen=True)
class CurvePoint:
    """Test quality after training on `examples` examples; n test examples are behind value."""

    examples: int
    value: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return _json(self)


@dataclass(frozen=True)
class CurveFit:
    """The fitted curve value(x) = ceiling - scale * x**-rate and what it says about the target.

    reachable: "reached" | "likely" | "uncertain" | "unlikely" | "no-target" | "too-few-points".
    Fit parameters are NaN when there were too few sizes to fit. examples_needed_high is None
    when more than 10% of resampled fits never reach the target ("may be unreachable").
    """

    ceiling: float
    scale: float
    rate: float
    points: tuple[CurvePoint, ...]
    target: float | None
    examples_needed: int | None
    examples_needed_low: int | None
    examples_needed_high: int | None
    reachable: str
    summary: str
    ceiling_low: float = math.nan
    ceiling_high: float = math.nan
    metric: str = "quality"

    def predict(self, x: float) -> float:
        if math.isnan(self.ceiling):
            raise ValueError("no curve was fitted (too few training-set sizes)")
        if x <= 0:
            raise ValueError(f"x must be positive, got {x}")
        return self.ceiling - self.scale * x ** (-self.rate)

    def to_dict(self) -> dict[str, Any]:
        return _json(self) | {"points": [p.to_dict() for p in self.points]}


def _r(v: float | None) -> float | None:
    # NaN/inf are not valid JSON; None says "not estimated".
    return None if v is None or not math.isfinite(v) else round(v, 4)


def _json(obj: CurvePoint | CurveFit) -> dict[str, Any]:
    items = ((f.name, getattr(obj, f.name)) for f in fields(obj) if f.name != "points")
    return {k: _r(v) if isinstance(v, float) else v for k, v in items}


def _arrays(points: Sequence[CurvePoint]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.array([p.examples for p in points], dtype=float)
    y = np.array([p.value for p in points], dtype=float)
    half = np.array([(p.ci_high - p.ci_low) / 2 for p in points], dtype=float)
    return x, y, np.maximum(half / _Z95, _MIN_SD)


def _fit_many(
    x: np.ndarray, ys: np.ndarray, w: np.ndarray, rates: np.ndarray = _RATES
) -> tuple[np.ndarray, ...]:
    """Best (ceiling, scale, rate) for each row of ys (shape (B, k)); weights w (k,); the rate
    from the grid `rates`."""
    z = x[None, :] ** -rates[:, None]  # (R, k)
    sw, swz, swzz = w.sum(), z @ w, (z * z) @ w
    swy, swzy = ys @ w, (ys * w) @ z.T  # (B,), (B, R)
    det = sw * swzz - swz**2
    c_free = (swzz * swy[:, None] - swz * swzy) / det
    s_free = (swz * swy[:, None] - sw * swzy) / det
    # The constraints (ceiling <= 1, scale >= 0) form a box corner, and the SSE is convex, so the
    # constrained optimum is the free one when feasible, else the better of the two clipped edges.
    c_flat = np.broadcast_to(np.minimum(swy / sw, 1.0)[:, None], swzy.shape)  # scale = 0
    s_cap = np.maximum((swz - swzy) / swzz, 0.0)  # ceiling = 1
    cands_c = np.stack([c_free, c_flat, np.ones_like(s_cap)])
    cands_s = np.stack([s_free, np.zeros_like(s_cap), s_cap])
    sse = np.stack(
        [
            ((ys[:, None, :] - c[..., None] + s[..., None] * z[None]) ** 2 * w).sum(-1)
            for c, s in zip(cands_c, cands_s, strict=True)
        ]
    )
    sse[0][(s_free < 0) | (c_free > 1) | ~np.isfinite(c_free)] = np.inf
    rows = np.arange(ys.shape[0])
    best = sse.transpose(1, 0, 2).reshape(len(rows), -1).argmin(axis=1)
    cand, ri = np.divmod(best, len(rates))
    return cands_c[cand, rows, ri], cands_s[cand, rows, ri], rates[ri]


def fit_curve(points: Sequence[CurvePoint]) -> tuple[float, float, float]:
    """Weighted least-squares (ceiling, scale, rate), with ceiling <= 1 and scale >= 0.

    Weights are 1/variance from each point's 95% CI, floored. Repeated sizes are allowed.
    """
    _check(points, None, 1, 1)
    if len({p.examples for p in points}) < 3:
        raise ValueError("need points at 3 or more distinct training-set sizes")
    x, y, sd = _arrays(points)
    c, s, r = _fit_many(x, y[None, :], 1 / sd**2)
    return float(c[0]), float(s[0]), float(r[0])


def _solve(c: np.ndarray, s: np.ndarray, r: np.ndarray, target: float, cap: int) -> np.ndarray:
    """Examples where each curve reaches target; inf when never or beyond cap."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        x = np.where(s > 0, (s / (c - target)) ** (1 / r), 1.0)  # flat curve: any size will do
    x = np.where(c > target, np.maximum(x, 1.0), np.inf)
    return np.where(x <= cap, x, np.inf)


def _check(points: Sequence[CurvePoint], target: float | None, resamples: int, cap: int) -> None:
    if resamples < 1 or cap < 1:
        raise ValueError("resamples and max_examples must be at least 1")
    if target is not None and not math.isfinite(target):
        raise ValueError(f"target must be finite, got {target}")
    for p in points:
        if p.examples < 1 or not all(map(math.isfinite, (p.value, p.ci_low, p.ci_high))):
            raise ValueError(f"invalid curve point {p}")
        if p.ci_low > p.ci_high:
            raise ValueError(f"ci_low > ci_high in {p}")


def _n(x: float) -> str:
    # Two significant figures: an extrapolation from a few points is never more precise.
    return f"{int(float(f'{x:.2g}')):,}"


def _verdict(x: np.ndarray, point: float) -> tuple[str, int | None, int | None]:
    """Classify from the resampled solutions x (inf = never reached) and the point estimate."""
    lo, hi = np.quantile(x, _QUANTILES, method="inverted_cdf")  # no interpolating toward inf
    low = math.ceil(lo) if math.isfinite(lo) else None
    high = math.ceil(hi) if math.isfinite(hi) else None
    # Under 10% of fits reaching it covers "ceiling's 80% interval below target" and the cap.
    if np.isfinite(x).mean() < _QUANTILES[0]:
        return "unlikely", low, high
    if high is not None and math.isfinite(point):
        return "likely", low, high
    return "uncertain", low, high


def _describe(fit: CurveFit, n_sizes: int, cap: int) -> str:
    """One plain-English sentence with the numbers behind fit.reachable."""
    if fit.reachable == "too-few-points":
        return (
            f"Too few training-set sizes to extrapolate: measured {n_sizes}, need {_MIN_SIZES}; "
            f"measure at least {_MIN_SIZES - n_sizes} more."
        )
    lo, hi, t = fit.examples_needed_low, fit.examples_needed_high, fit.target
    ceiling = f"the fitted ceiling is {fit.ceiling:.3f} (80% interval {fit.ceiling_low:.3f}-"
    ceiling += f"{fit.ceiling_high:.3f})"
    if t is None:
        return f"No target set; {ceiling}."
    if fit.reachable == "reached":
        p = next(p for p in fit.points if p.value >= t)
        return (
            f"Already reached: {p.examples:,} training examples gave {fit.metric} {p.value:.3f} "
            f"(95% CI {p.ci_low:.3f}-{p.ci_high:.3f}), at or above the target {t:g}."
        )
    goal, need = f"{fit.metric} {t:g}", fit.examples_needed
    if fit.reachable == "likely" and need is not None and lo is not None and hi is not None:
        span = f"80% interval {_n(lo)}-{_n(hi)}"
        return f"About {_n(need)} examples ({span}) should reach {goal}; {ceiling}."
    if fit.reachable == "uncertain" and need is not None and lo is not None:
        return (
            f"About {_n(need)} examples may reach {goal}, but the 80% interval runs from "
            f"{_n(lo)} to possibly unreachable; {ceiling}."
        )
    if fit.reachable == "uncertain" and lo is not None:
        return f"The target {goal} may be out of reach: {ceiling}; it needs over {_n(lo)} examples."
    return f"The target {goal} looks out of reach within {_n(cap)} training examples: {ceiling}."


def _bootstrap(
    points: tuple[CurvePoint, ...], seed: int, resamples: int
) -> tuple[tuple[float, float, float], tuple[np.ndarray, ...]]:
    """Point fit, plus fits to resamples drawn from normals matching each point's CI (with two
    sizes, each refit at a rate drawn from PRIOR_RATES)."""
    x, y, sd = _arrays(points)
    w = 1 / sd**2
    rng = np.random.default_rng(seed)
    draws = rng.normal(y, sd, size=(resamples, len(points))).clip(0.0, 1.0)
    if len(set(x.tolist())) >= 3:
        c, s, r = (float(v[0]) for v in _fit_many(x, y[None, :], w))
        return (c, s, r), _fit_many(x, draws, w)
    low, high = np.log(PRIOR_RATES)
    middle = np.array([math.exp((low + high) / 2)])
    c, s, r = (float(v[0]) for v in _fit_many(x, y[None, :], w, middle))
    rates = np.exp(rng.uniform(low, high, resamples))
    refits = [_fit_many(x, draws[i : i + 1], w, rates[i : i + 1]) for i in range(resamples)]
    return (c, s, r), tuple(np.concatenate(part) for part in zip(*refits, strict=True))


def estimate_examples(
    points: Sequence[CurvePoint],
    target: float | None,
    *,
    seed: int = 0,
    resamples: int = 500,
    max_examples: int = 1_000_000,
    metric: str = "quality",
) -> CurveFit:
    """Fit the learning curve and estimate how many training examples reach target.

    A measured point at or above target gives "reached" with the smallest such size; a single
    size gives "too-few-points"; two sizes fit with the rate's prior (PRIOR_RATES).
    Deterministic for a seed.
    """
    pts = tuple(sorted(points, key=lambda p: p.examples))
    _check(pts, target, resamples, max_examples)
    n_sizes = len({p.examples for p in pts})
    (c, s, r), boot, c_ci = (math.nan,) * 3, None, (math.nan, math.nan)
    if n_sizes >= _MIN_SIZES:
        (c, s, r), boot = _bootstrap(pts, seed, resamples)
        c_ci = tuple(float(v) for v in np.quantile(boot[0], _QUANTILES))
    hits = [p.examples for p in pts if target is not None and p.value >= target]
    verdict, need, low, high = "no-target", None, None, None
    if hits:
        verdict, need = "reached", min(hits)
    elif boot is None:
        verdict = "too-few-points"
    elif target is not None:
        point = float(_solve(*np.array([[c], [s], [r]]), target, max_examples)[0])
        verdict, low, high = _verdict(_solve(*boot, target, max_examples), point)
        need = math.ceil(point) if math.isfinite(point) else None
    fit = CurveFit(c, s, r, pts, target, need, low, high, verdict, "", c_ci[0], c_ci[1], metric)
    summary = _describe(fit, n_sizes, max_examples)
    if n_sizes == 2 and verdict not in ("reached", "too-few-points"):
        low, high = PRIOR_RATES
        summary += f" (Two training-set sizes: each refit's rate is drawn from {low:g}-{high:g}.)"
    return replace(fit, summary=summary)


@dataclass(frozen=True)
class Forecast:
    """What the fitted curve says a training set of `examples` would reach, with the 80%
    interval of its parametric-bootstrap refits (an extrapolation: read it as a range)."""

    examples: int
    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, Any]:
        return {"examples": self.examples} | {
            k: round(getattr(self, k), 4) for k in ("value", "low", "high")
        }


def forecast(
    points: Sequence[CurvePoint], examples: int, *, seed: int = 0, resamples: int = 500
) -> Forecast | None:
    """The curve's quality at `examples` training examples; None with a single size."""
    pts = tuple(sorted(points, key=lambda p: p.examples))
    _check(pts, None, resamples, 1)
    if len({p.examples for p in pts}) < _MIN_SIZES or examples < 1:
        return None
    (c, s, r), (cs, ss, rs) = _bootstrap(pts, seed, resamples)
    values = np.clip(cs - ss * float(examples) ** -rs, 0.0, 1.0)
    low, high = (float(v) for v in np.quantile(values, _QUANTILES))
    point = min(1.0, max(0.0, c - s * examples**-r))
    return Forecast(examples, point, min(low, point), max(high, point))
