"""The ladder's training steps where a fine-tuning service trains (a strategy whose record
requires a fine-tuning-endpoint): nothing is warmed up or fitted to the budget here, since the
job runs on the service's compute and is priced by its trained tokens; the candidate is
measured, and only its answers count against the budget."""

from __future__ import annotations

from tunewise.core.catalog import Strategy
from tunewise.core.specs import CandidateSpec
from tunewise.deciding.ladder import Ladder, verdict_text

TITLES = {3: "fine-tuning", 4: "hybrid"}


def service_step(
    ladder: Ladder, step: int, strategy: Strategy, gate: str, spec: CandidateSpec
) -> str | None:
    """Measure a method the endpoint's service trains; the reason the ladder stops, or None."""
    began = ladder.clock()
    name = strategy.name
    result = ladder.run(spec, name)
    training = result.setup.training
    if training is not None and training.remote:
        ladder.spent -= training.seconds  # the job's time on the service, not compute here
    recommendation = ladder.decision()
    if result.measured:
        tokens = training.trained_tokens if training is not None else 0
        how = f"fine-tuned on the service ({tokens:,} trained tokens); "
        reason = f"{gate}; {how}{verdict_text(recommendation, step)}"
    else:
        reason = f"{gate}; {result.skipped}"
    seconds = ladder.clock() - began
    ladder.record(step, TITLES[step], "run", reason, candidates=(name,), seconds=seconds)
    if recommendation.verdict == "meets-target":
        return f"step {recommendation.step} meets the target"
    return None
