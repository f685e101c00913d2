"""Step 1's prompting strategies as the budget allows: whether one after the baseline can start
at all, and whether few-shot's demo re-draws run."""

from __future__ import annotations

from tunewise.core.catalog import Strategy
from tunewise.deciding.ladder import Ladder, strategies_for
from tunewise.deciding.plan import REDRAW_EXAMPLES, planned_per_answer
from tunewise.evaluation.sequential import looks
from tunewise.measuring.candidate import CandidateResult


def measure_prompting(ladder: Ladder, strategy: Strategy) -> CandidateResult:
    """A prompting strategy; measured in rounds, its demo re-draws (the `redraws` hook) run
    only when it ends close enough to the target for its fragility to matter, not when its
    interval is already clear below it, and only when they fit what is left of the budget."""
    spec = ladder.settings(strategy.name)
    draws = getattr(spec, "redraws", 1)
    if strategy.hook("redraws") is None or draws <= 1:
        return ladder.run(spec, strategy.name)
    one_draw = spec.model_copy(update={"redraws": 1})
    if ladder.scores is None:  # answered at once, its re-draws with it, where they fit
        n = len(ladder.test)
        fits = _redraws_fit(ladder, draws, n, _planned_per_answer(ladder, strategy), n)
        if not fits:
            ladder.reduce(1, strategy.name, "redraws", draws, 1)
        return ladder.run(spec if fits else one_draw, strategy.name)
    result = ladder.run(one_draw, strategy.name)
    far = result.sequential is not None and result.sequential.reason == "below the target"
    if far or not result.measured:
        return result
    if not _redraws_fit(ladder, draws, len(result.predictions), seconds_per_answer(result, ladder)):
        ladder.reduce(1, strategy.name, "redraws", draws, 1)
        return result
    return ladder.with_extras(spec)


def _redraws_fit(
    ladder: Ladder, draws: int, examples: int, per_answer: float | None, answered: int = 0
) -> bool:
    """Whether the demo re-draws (and `answered` answers beside them) fit what is left."""
    if ladder.budget is None or per_answer is None:
        return True
    redrawn = min(REDRAW_EXAMPLES, examples) * (draws - 1)
    return ladder.fits((redrawn + answered) * per_answer)


def _planned_per_answer(ladder: Ladder, strategy: Strategy) -> float | None:
    """The plan's seconds per answer of a prompting strategy (None: not planned)."""
    return None if ladder.timing is None else planned_per_answer(ladder.timing, strategy)


def no_room(ladder: Ladder, strategy: Strategy) -> bool:
    """Whether a prompting strategy after the baseline cannot start: its first answers (its
    first round, or the whole sample where answers are not scored one by one) would overrun
    what is left of the budget at the plan's rates. If so it is recorded as not run, with its
    estimate and the command that measures it anyway."""
    if ladder.budget is None or ladder.timing is None:
        return False
    n = len(ladder.test) if ladder.scores is None else looks(len(ladder.test))[0]
    cost = n * (_planned_per_answer(ladder, strategy) or 0.0)
    if ladder.fits(cost):
        return False
    why = (
        f"its first {n} answers need about {cost:.0f} s, more than the {ladder.left():.0f} s "
        "left of the budget"
    )
    command = ladder.command(strategies_for(strategy.name))
    ladder.record(1, strategy.name, "not run: budget", why, estimated_seconds=cost, command=command)
    return True


def seconds_per_answer(result: CandidateResult, ladder: Ladder) -> float:
    """Measured compute per answer, else the baseline's warm-up figure."""
    if result.measured and result.predictions:
        return max(result.compute_seconds_per_request, 1e-4)
    return ladder.per_answer.get(ladder.baseline, 0.0)
