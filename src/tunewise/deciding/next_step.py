"""The measured next action that closes every recommendation (pure: reads records, runs nothing).

A winner: confirm it when its CI straddles the target, else serve it. No winner: the step the
budget left out, the gate that blocked a tuned candidate, the labelled examples the learning
curve asks for, the curve itself when fine-tuning was measured without one, else a larger model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tunewise.deciding.decide import MIN_FINE_TUNING_EXAMPLES
from tunewise.deciding.ladder import LadderRecord, StepOutcome, strategies_for
from tunewise.deciding.learning_curve import CurveFit
from tunewise.deciding.verdict import NextStep, Recommendation
from tunewise.evaluation import MetricValue
from tunewise.strategies.catalog import family_of, first_in_ladder
from tunewise.task.config import Target

LARGER_MODEL = "hf:HuggingFaceTB/SmolLM2-360M-Instruct"
"""The next size up of the embedded model, as a model spec (hf:ORG/NAME)."""
RUN_DIR = "{run_dir}"  # replaced by the run's folder when results.json is written

Command = Callable[..., str]
"""(strategies, **flags) -> the `tunewise run` command with this run's other flags."""


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
    chosen = recommendation.candidate
    if target is None:
        return NextStep("Set `target: {metric: ..., min: ...}` in task.yaml to get a decision.")
    if recommendation.verdict == "meets-target" and chosen in measured:
        strategy, quality = measured[chosen]
        if quality.ci_low < target.min:
            return NextStep(
                f"Confirm {chosen} on every test example: its 95% CI "
                f"({quality.ci_low:.3f}-{quality.ci_high:.3f}, n={quality.n}) straddles "
                f"the target {target.min}.",
                command(strategy, limit="all"),
            )
        return NextStep(
            f"Serve {chosen} (OpenAI-compatible endpoint) and gate later model or prompt "
            "updates against this run with `tunewise gate`.",
            f"tunewise serve {RUN_DIR} --candidate {chosen}",
        )
    steps = ladder.steps if ladder else []
    left_out = [s for s in steps if s.status == "not run: budget"]
    later = [s for s in left_out if s.step > 1]  # step 1's optional prompt search matters least
    if later:
        return _measure_without_budget(later[0])
    subsampled = [
        r for r in (ladder.reductions if ladder else [])
        if r.setting == "max_train_examples" and r.candidate in measured
    ]  # fmt: skip
    if subsampled and curve is None:
        cut = subsampled[0]
        sizes = f"{max(10, cut.before // 4)},{max(10, cut.before // 2)}"
        return NextStep(
            f"{cut.candidate} trained on {cut.after:,} of the {cut.before:,} examples to fit the "
            "budget: measure it on all of them, with its learning curve, to see how far more "
            "data goes.",
            command(strategies_for(measured[cut.candidate][0]), learning_curve=sizes),
        )
    if recommendation.verdict == "blocked":
        more = MIN_FINE_TUNING_EXAMPLES - train_examples
        action = (recommendation.changes or ["Fine-tuning's gate blocked the candidate."])[0]
        return NextStep(action, None, more if more > 0 else None)
    # The fine-tuned candidates, the one the decision came closest with first.
    tuned = [(n, s) for n, (s, _) in measured.items() if family_of(s) == "fine-tuning"]
    tuned.sort(key=lambda pair: pair[0] not in (recommendation.candidate, recommendation.closest))
    if curve is not None and curve.examples_needed is not None and curve.reachable != "reached":
        more = max(0, curve.examples_needed - train_examples)
        low, high = curve.examples_needed_low, curve.examples_needed_high
        interval = (
            (max(0, low - train_examples), None if high is None else max(0, high - train_examples))
            if low is not None
            else None
        )
        bounds = f"{low:,}-{high:,}" if low is not None and high is not None else "open-ended"
        return NextStep(
            f"Label about {more:,} more examples: the learning curve reaches {target.min} at "
            f"about {curve.examples_needed:,} training examples (80% interval {bounds}); then "
            "run the fine-tuning step again.",
            command(tuned[0][1] if tuned else first_in_ladder("fine-tuning")),
            more,
            interval,
        )
    if tuned and curve is None and train_examples >= 40:
        sizes = sorted({max(10, train_examples // 4), max(10, train_examples // 2)})
        return NextStep(
            f"Measure {tuned[0][0]}'s learning curve to see how many labelled examples would "
            "close the gap.",
            command(tuned[0][1], learning_curve=",".join(str(s) for s in sizes)),
        )
    if left_out:
        return _measure_without_budget(left_out[0])
    return NextStep(
        f"No step reached the target with {model}: try a larger model (any `hf:ORG/NAME`, "
        "a local folder, or an endpoint from `models:`).",
        command(_strategies(measured), model=LARGER_MODEL),
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
