"""The measured next action that closes every recommendation (pure: reads records, runs nothing).

A winner: confirm it when its CI straddles the target, else serve it. No winner: the forecast of
a fine-tuned candidate the budget trained on a subsample, the step the budget left out, the gate
that blocked a tuned candidate, the labelled examples the learning curve asks for, the curve
itself when fine-tuning was measured without one, else a larger model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tunewise.core.catalog import family_of, first_in_ladder
from tunewise.deciding.decide import MIN_FINE_TUNING_EXAMPLES
from tunewise.deciding.ladder import LadderRecord, StepOutcome, strategies_for
from tunewise.deciding.verdict import NextStep, Recommendation
from tunewise.evaluation import MetricValue
from tunewise.measuring.learning_curve import CurveFit
from tunewise.task.config import Target

LARGER_MODEL = "hf:HuggingFaceTB/SmolLM2-360M-Instruct"
"""The next size up of the embedded model, as a model spec (hf:ORG/NAME)."""
RUN_DIR = "{run_dir}"  # replaced by the run's folder when results.json is written

Command = Callable[..., str]
"""(strategies, **flags) -> the `tunewise run` command with this run's other flags."""


@dataclass(frozen=True)
class _Asked:
    """What every branch reads: the decision, the walk and the curve, and the run's figures."""

    recommendation: Recommendation
    ladder: LadderRecord | None
    curve: CurveFit | None
    measured: Mapping[str, tuple[str, MetricValue]]
    target: Target
    train_examples: int
    command: Command
    model: str

    def left_out(self) -> list[StepOutcome]:
        """The ladder's steps the budget left out."""
        steps = self.ladder.steps if self.ladder else []
        return [s for s in steps if s.status == "not run: budget"]

    def tuned(self) -> list[tuple[str, str]]:
        """The fine-tuned candidates (name, strategy), the one the decision came closest with
        first."""
        chosen = (self.recommendation.candidate, self.recommendation.closest)
        tuned = [(n, s) for n, (s, _) in self.measured.items() if family_of(s) == "fine-tuning"]
        return sorted(tuned, key=lambda pair: pair[0] not in chosen)


def _forecast_full_training(asked: _Asked) -> NextStep | None:
    """A fine-tuned candidate trained on a subsample: its forecast with every example, and
    what training on all of them costs here."""
    forecast = asked.ladder.forecast if asked.ladder else None
    if forecast is None:
        return None
    point, ahead = forecast.measured, forecast.forecast
    reaches = "reaching" if ahead.low >= asked.target.min else "against"
    return NextStep(
        f"{forecast.candidate} on {point.examples:,} examples: {point.value:.3f} (95% CI "
        f"{point.ci_low:.3f}-{point.ci_high:.3f}, n={point.n}); its learning curve forecasts "
        f"{ahead.value:.3f} (80% interval {ahead.low:.3f}-{ahead.high:.3f}) at "
        f"{ahead.examples:,} examples, {reaches} the target {asked.target.min:g}. Training on "
        f"all of them here takes about {_duration(forecast.seconds)}.",
        forecast.command,
    )


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def next_step(
    recommendation: Recommendation,
    ladder: LadderRecord | None,
    curve: CurveFit | None,
    *,
    measured: Mapping[str, tuple[str, MetricValue]],
    target: Target | None,
    train_examples: int,
    command: Command,
    model: str,
) -> NextStep:
    """`measured`: candidate name -> (strategy, quality on the target's metric)."""
    if target is None:
        return NextStep("Set `target: {metric: ..., min: ...}` in task.yaml to get a decision.")
    asked = _Asked(recommendation, ladder, curve, measured, target, train_examples, command, model)
    return (
        _confirm_or_serve(asked)
        or _forecast_full_training(asked)
        or _later_step_left_out(asked)
        or _train_on_all(asked)
        or _lift_the_gate(asked)
        or _label_more(asked)
        or _measure_the_curve(asked)
        or _first_step_left_out(asked)
        or _larger_model(asked)
    )


def _confirm_or_serve(asked: _Asked) -> NextStep | None:
    """A winner: confirm it on every test example when its CI straddles the target, else
    serve it."""
    chosen, target = asked.recommendation.candidate, asked.target
    if asked.recommendation.verdict != "meets-target" or chosen not in asked.measured:
        return None
    strategy, quality = asked.measured[chosen]
    if quality.ci_low < target.min:
        return NextStep(
            f"Confirm {chosen} on every test example: its 95% CI "
            f"({quality.ci_low:.3f}-{quality.ci_high:.3f}, n={quality.n}) straddles "
            f"the target {target.min}.",
            asked.command(strategy, limit="all"),
        )
    return NextStep(
        f"Serve {chosen} (OpenAI-compatible endpoint) and gate later model or prompt "
        "updates against this run with `tunewise gate`.",
        f"tunewise serve {RUN_DIR} --candidate {chosen}",
    )


def _later_step_left_out(asked: _Asked) -> NextStep | None:
    """A step after the first that the budget left out (step 1's optional prompt search
    matters least)."""
    later = [s for s in asked.left_out() if s.step > 1]
    return _measure_without_budget(later[0]) if later else None


def _train_on_all(asked: _Asked) -> NextStep | None:
    """A candidate the budget trained on a subsample, measured without a learning curve."""
    reductions = asked.ladder.reductions if asked.ladder else []
    subsampled = [
        r for r in reductions if r.setting == "max_train_examples" and r.candidate in asked.measured
    ]
    if not subsampled or asked.curve is not None:
        return None
    cut = subsampled[0]
    sizes = f"{max(10, cut.before // 4)},{max(10, cut.before // 2)}"
    return NextStep(
        f"{cut.candidate} trained on {cut.after:,} of the {cut.before:,} examples to fit the "
        "budget: measure it on all of them, with its learning curve, to see how far more "
        "data goes.",
        asked.command(strategies_for(asked.measured[cut.candidate][0]), learning_curve=sizes),
    )


def _lift_the_gate(asked: _Asked) -> NextStep | None:
    """The fine-tuning gate blocked a candidate: what would lift it."""
    recommendation = asked.recommendation
    if recommendation.verdict != "blocked":
        return None
    more = MIN_FINE_TUNING_EXAMPLES - asked.train_examples
    action = (recommendation.changes or ["Fine-tuning's gate blocked the candidate."])[0]
    return NextStep(action, None, more if more > 0 else None)


def _label_more(asked: _Asked) -> NextStep | None:
    """The learning curve reaches the target with more labelled examples: how many."""
    curve, train_examples = asked.curve, asked.train_examples
    if curve is None or curve.examples_needed is None or curve.reachable == "reached":
        return None
    more = max(0, curve.examples_needed - train_examples)
    low, high = curve.examples_needed_low, curve.examples_needed_high
    interval = (
        (max(0, low - train_examples), None if high is None else max(0, high - train_examples))
        if low is not None
        else None
    )
    bounds = f"{low:,}-{high:,}" if low is not None and high is not None else "open-ended"
    tuned = asked.tuned()
    return NextStep(
        f"Label about {more:,} more examples: the learning curve reaches {asked.target.min} at "
        f"about {curve.examples_needed:,} training examples (80% interval {bounds}); then "
        "run the fine-tuning step again.",
        asked.command(tuned[0][1] if tuned else first_in_ladder("fine-tuning")),
        more,
        interval,
    )


def _measure_the_curve(asked: _Asked) -> NextStep | None:
    """Fine-tuning was measured without a learning curve: measure one."""
    tuned, train_examples = asked.tuned(), asked.train_examples
    if not tuned or asked.curve is not None or train_examples < 40:
        return None
    sizes = sorted({max(10, train_examples // 4), max(10, train_examples // 2)})
    return NextStep(
        f"Measure {tuned[0][0]}'s learning curve to see how many labelled examples would "
        "close the gap.",
        asked.command(tuned[0][1], learning_curve=",".join(str(s) for s in sizes)),
    )


def _first_step_left_out(asked: _Asked) -> NextStep | None:
    left_out = asked.left_out()
    return _measure_without_budget(left_out[0]) if left_out else None


def _larger_model(asked: _Asked) -> NextStep:
    return NextStep(
        f"No step reached the target with {asked.model}: try a larger model (any `hf:ORG/NAME`, "
        "a local folder, or an endpoint from `models:`).",
        asked.command(_strategies(asked.measured), model=LARGER_MODEL),
    )


def _measure_without_budget(step: StepOutcome) -> NextStep:
    estimate = f" (about {step.estimated_seconds:.0f} s)" if step.estimated_seconds else ""
    return NextStep(
        f"Step {step.step} ({step.title}) did not fit the budget{estimate}: measure it "
        "without one.",
        step.command,
    )


def _strategies(measured: Mapping[str, tuple[str, MetricValue]]) -> str:
    walked = ",".join(dict.fromkeys(strategy for strategy, _ in measured.values()))
    return walked or first_in_ladder("prompting")
