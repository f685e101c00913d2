"""The ladder's training steps: a fine-tuning or hybrid method timed by a short warm-up
training, its epochs and training subsample fitted to what is left of the budget, then
measured; or recorded as not run, with its estimate and the command that runs it."""

from __future__ import annotations

import math
from typing import Literal

from tunewise.core.catalog import Strategy
from tunewise.core.specs import CandidateSpec, FineTuningOptions
from tunewise.deciding.ladder import (
    Ladder,
    LadderForecast,
    strategies_for,
    verdict_text,
)
from tunewise.deciding.plan import FIXED_SECONDS, MIN_TRAIN_SUBSAMPLE
from tunewise.deciding.service_steps import service_step
from tunewise.evaluation.sequential import looks
from tunewise.evaluation.stats import MetricValue
from tunewise.measuring.candidate import CandidateResult
from tunewise.measuring.learning_curve import CurvePoint, estimate_examples, forecast
from tunewise.measuring.timing import WARM_UP_TRAINING, untimed_training_rate, warm_up_spec

TITLES = {2: "RAG", 3: "fine-tuning", 4: "hybrid"}
CURVE_TRAINING = 1.75  # a subsample's training plus a half and a quarter of it, for the curve
RESERVED_LOOKS = 2  # rounds of answers a trained candidate's estimate reserves
CURVE_SPREAD = 3  # a subsample forecast from the warm-up's point is at least this many times it
Curve = Literal["three sizes", "warm-up"] | None  # how a subsample's learning curve is measured


def answering_estimate(ladder: Ladder, factor: float = 1.0, whole: bool = False) -> float:
    """Seconds for a trained candidate to answer its first two rounds of the test sample (it
    stops there when its interval is clear of the target, or for want of budget), or the
    `whole` sample: the baseline's per-answer compute, times `factor` for a longer prompt (a
    hybrid's passages)."""
    planned = looks(len(ladder.test))
    n = len(ladder.test) if whole or ladder.scores is None else planned[:RESERVED_LOOKS][-1]
    return n * ladder.per_answer.get(ladder.baseline, 0.0) * factor


def training_estimate(
    ladder: Ladder, examples: int, epochs: int, factor: float = 1.0, name: str | None = None
) -> float:
    """Seconds per training example from the warm-up of `name` (else of any method warmed up),
    else from the plan's timing (its warm-up, else three forward passes at the price of reading
    a token), else three of the baseline's answers per example and epoch."""
    rate = ladder.per_answer.get(f"train:{name}", ladder.per_answer.get("train"))
    per_example = rate if rate is not None else _planned_training_rate(ladder)
    return examples * epochs * per_example * factor + FIXED_SECONDS


def _planned_training_rate(ladder: Ladder) -> float:
    """Seconds per training example before the ladder's own warm-up: the plan's rate, never
    three whole answers where the plan priced reading (on a task with long generated answers,
    that would price training many times too high and leave step 3 out)."""
    timing = ladder.timing
    if timing is None:
        return 3 * ladder.per_answer.get(ladder.baseline, 0.0)
    if timing.train_seconds_per_example is not None:
        return timing.train_seconds_per_example
    return untimed_training_rate(timing)


def trained_step(
    ladder: Ladder,
    step: int,
    strategy: Strategy,
    gate: str,
    spec: CandidateSpec | None = None,
    factor: float = 1.0,
) -> str | None:
    """One training method at its step: a short warm-up training times it, epochs and a
    subsample are fitted to the budget, then it is measured; or the step is reported as not
    run with its estimate and command. `factor`: the step's prompt length against the short
    prompt's (a hybrid trains and answers with passages)."""
    chosen = spec if spec is not None else ladder.settings(strategy.name)
    if strategy.trains_remotely:  # nothing trains here: no warm-up, no fitting to the budget
        return service_step(ladder, step, strategy, gate, chosen)
    if not isinstance(chosen, FineTuningOptions):
        return None
    name, title = strategy.name, TITLES[step]
    why_not = strategy.trainer.unavailable() if strategy.trainer else None
    if why_not:
        ladder.record(step, title, "skipped", f"{name}: {why_not}", candidates=(name,))
        return None
    began = ladder.clock()
    fitted = _fit_training(ladder, step, name, chosen, factor, gate)
    if fitted is None:
        return None
    asked, (chosen, estimate, curve) = chosen, fitted
    result = ladder.run(chosen, name)
    recommendation = ladder.decision()
    if curve and result.measured and recommendation.verdict != "meets-target":
        full = min(ladder.train_examples, asked.max_train_examples or ladder.train_examples)
        size = (full, asked.epochs)
        forecast_full_size(ladder, strategy, chosen, result, size, factor, curve)
    reason = f"{gate}; " + (
        verdict_text(recommendation, step) if result.measured else str(result.skipped)
    )
    seconds = ladder.clock() - began
    ladder.record(
        step, title, "run", reason, candidates=(name,), seconds=seconds, estimated_seconds=estimate
    )
    if recommendation.verdict == "meets-target":
        cheaper = ", and the hybrid (the same adapter with a longer prompt) cannot cost less"
        return f"step {recommendation.step} meets the target" + (cheaper if step == 3 else "")
    return None


def _fit_training(
    ladder: Ladder, step: int, name: str, spec: FineTuningOptions, factor: float, gate: str
) -> tuple[FineTuningOptions, float, Curve] | None:
    """The training settings that fit what is left, their estimate, and how a subsample's
    learning curve will forecast the full size (a subsample leaves the question of more data
    open): with two smaller trainings when there is room for them, else with the warm-up
    adapter as the smaller size; None (recorded as not run, with the command that runs it)
    when even the smallest useful subsample does not fit."""
    n = min(ladder.train_examples, spec.max_train_examples or ladder.train_examples)
    answering = answering_estimate(ladder, factor)

    def estimate(examples: int, epochs: int) -> float:
        return training_estimate(ladder, examples, epochs, factor, name)

    least_with_warm_up = CURVE_SPREAD * _warm_up_examples(ladder)  # with the warm-up's point
    least = min(MIN_TRAIN_SUBSAMPLE, least_with_warm_up, n)
    smallest = estimate(least, 1) + answering

    def left_out(full: float) -> None:
        sizes = _sizes(smallest, least, full, n, spec.epochs)
        why = f"{gate}; {sizes}; {max(ladder.left(), 0):.0f} s left"
        ladder.record(step, TITLES[step], "not run: budget", why, estimated_seconds=full,
                      command=ladder.command(strategies_for(name)))  # fmt: skip

    if ladder.budget is not None and "train" not in ladder.per_answer and not ladder.fits(smallest):
        left_out(estimate(n, spec.epochs) + answering)
        return None
    if (
        ladder.budget is not None
        and f"train:{name}" not in ladder.per_answer
        and (step == 3 or "train" not in ladder.per_answer)
    ):
        _warm_up(ladder, name)
    epochs, examples, curve = spec.epochs, n, None
    full = estimate(n, epochs) + answering
    if not ladder.fits(full):
        epochs = 1
        room = ladder.left() - FIXED_SECONDS - answering
        per_example = max(estimate(1, 1) - FIXED_SECONDS, 1e-9)
        examples = min(n, math.floor(room / per_example / 10) * 10)
        # With the curve's two smaller trainings (a half and a quarter), their loads and answers.
        smaller = 2 * (answering + FIXED_SECONDS)
        curved = math.floor((room - smaller) / per_example / CURVE_TRAINING / 10) * 10
        # Else the warm-up adapter (same settings, answers only) is the curve's smaller size.
        warmed = math.floor((room - answering) / per_example / 10) * 10
        if ladder.scores is not None and MIN_TRAIN_SUBSAMPLE <= curved < n:
            examples, curve = curved, "three sizes"
        elif _warm_up_is_a_point(ladder, name, spec) and least_with_warm_up <= warmed < n:
            examples, curve = warmed, "warm-up"
        fewest = least_with_warm_up if curve == "warm-up" else MIN_TRAIN_SUBSAMPLE
        if examples < min(fewest, n):
            left_out(full)
            return None
        if spec.epochs > 1:
            ladder.reduce(step, name, "epochs", spec.epochs, 1)
        if examples < n:
            ladder.reduce(step, name, "max_train_examples", n, examples)
    subsample = examples if examples < n else spec.max_train_examples
    fitted = spec.model_copy(update={"epochs": epochs, "max_train_examples": subsample})
    if curve == "three sizes":  # the subsample, a half and a quarter, loaded and answering
        trainings = estimate(round(examples * CURVE_TRAINING), epochs) + 2 * FIXED_SECONDS
        return fitted, trainings + 3 * answering, curve
    warm_up_answers = answering if curve == "warm-up" else 0.0
    return fitted, estimate(examples, epochs) + answering + warm_up_answers, curve


def _sizes(smallest: float, least: int, full: float, n: int, epochs: int) -> str:
    """Both sizes' times: the smallest useful training answers the question; the full one is
    what the step's command (pinned, at the task's settings) runs."""
    sizes = f"about {full:.0f} s for all {n} examples x {epochs} epochs"
    if smallest < full:
        return f"about {smallest:.0f} s at its smallest useful size ({least} x 1), " + sizes
    return sizes


def _warm_up_is_a_point(ladder: Ladder, name: str, spec: FineTuningOptions) -> bool:
    """Whether this ladder's warm-up trained `name` with `spec`'s settings (one epoch), so its
    adapter, answered, is a learning-curve point at the warm-up's size."""
    size = _warm_up_examples(ladder)
    one_epoch = spec.model_copy(update={"epochs": 1, "max_train_examples": size})
    return f"train:{name}" in ladder.per_answer and one_epoch == warm_up_spec(spec, size)


def _warm_up_examples(ladder: Ladder) -> int:
    return ladder.timing.warm_up_examples if ladder.timing else WARM_UP_TRAINING


def forecast_full_size(
    ladder: Ladder,
    strategy: Strategy,
    spec: FineTuningOptions,
    result: CandidateResult,
    size: tuple[int, int],
    factor: float,
    curve: Curve = "three sizes",
) -> None:
    """Measure the method at smaller sizes (trained again on a half and a quarter of its
    subsample, or the warm-up adapter), fit the learning curve through the points, and forecast
    its quality with all the training examples; `size`: their number and the epochs the task
    asks for."""
    full, epochs = size
    trained = spec.max_train_examples or full
    n = result.sequential.n if result.sequential else len(ladder.test)
    points = [_point(trained, result.metrics[ladder.metric])]
    sizes = {max(10, trained // 2), max(10, trained // 4)}
    if curve != "three sizes":
        sizes = {_warm_up_examples(ladder)}
    for size in sorted(sizes - {trained}):
        smaller = ladder.measure_aside(
            spec.model_copy(update={"max_train_examples": size}), f"{result.name}@{size}", n
        )
        if not smaller.measured:
            return
        points.append(_point(size, smaller.metrics[ladder.metric]))
    task = ladder.task
    target = task.target.min if task.target else None
    ladder.curve = estimate_examples(points, target, seed=task.seed, metric=ladder.metric)
    predicted = forecast(points, full, seed=task.seed)
    if predicted is None:
        return
    answering = answering_estimate(ladder, factor, whole=True)
    seconds = training_estimate(ladder, full, epochs, factor, strategy.name) + answering
    command = ladder.command(strategies_for(strategy.name))
    ladder.forecast = LadderForecast(
        result.name, trained, points[0], predicted, round(seconds, 1), command
    )


def _point(examples: int, value: MetricValue) -> CurvePoint:
    return CurvePoint(examples, value.value, value.ci_low, value.ci_high, value.n)


def _warm_up(ladder: Ladder, name: str) -> None:
    """A short training of the method's settings times it per example."""
    warm = warm_up_spec(ladder.settings(name), _warm_up_examples(ladder))
    trained, examples = ladder.train_seconds(warm, f"{name} warm-up")
    ladder.spent += trained
    rate = trained / max(1, examples)
    ladder.per_answer[f"train:{name}"] = rate
    ladder.per_answer.setdefault("train", rate)
