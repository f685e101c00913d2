"""The learning curve, measured: the first fine-tuning candidate (of any registered method)
trained again on seeded subsets of train, each measured like any candidate, and the curve
fitted to the points."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tunewise.core.catalog import names_where, strategy_named
from tunewise.core.specs import CandidateSpec
from tunewise.errors import TunewiseError
from tunewise.evaluation import MetricValue
from tunewise.measuring.candidate import CandidateResult, primary_metric
from tunewise.measuring.learning_curve import CurveFit, CurvePoint, estimate_examples
from tunewise.task.config import Task


def learning_curve(
    task: Task,
    specs: Sequence[CandidateSpec],
    results: Sequence[CandidateResult],
    sizes: Sequence[int],
    measure: Callable[[CandidateSpec, str], CandidateResult],
) -> CurveFit:
    """Train the first fine-tuning candidate on seeded subsets of each size; fit the curve."""
    chosen = next(
        (
            (s, r)
            for s, r in zip(specs, results, strict=True)
            if strategy_named(s.strategy).family == "fine-tuning" and r.measured
        ),
        None,
    )
    if chosen is None:
        methods = ", ".join(sorted(names_where(family="fine-tuning")))
        raise TunewiseError(
            f"--learning-curve needs a fine-tuning candidate ({methods}); add one to --strategies"
        )
    spec, full = chosen
    metric = primary_metric(task)
    assert full.setup.training is not None  # a measured fine-tuning candidate trained
    full_size = full.params["train_examples"] + full.setup.training.validation_examples
    points = [_point(full_size, full.metrics[metric])]
    for size in sorted({min(max(size, 10), full_size) for size in sizes} - {full_size}):
        subset = spec.model_copy(update={"max_train_examples": size})
        result = measure(subset, f"{full.name}@{size}")
        points.append(_point(size, result.metrics[metric]))
    target = task.target.min if task.target else None
    return estimate_examples(points, target, seed=task.seed, metric=metric)


def _point(examples: int, value: MetricValue) -> CurvePoint:
    return CurvePoint(examples, value.value, value.ci_low, value.ci_high, value.n)
