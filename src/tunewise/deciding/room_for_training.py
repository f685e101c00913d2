"""Room for step 3 first: when prompting is already clear below the target, a further prompting
strategy whose answers would leave too little budget for the smallest useful fine-tuning gives
way to it. Long inputs make this common: few-shot's demos multiply every prompt, and on a small
CPU a few dozen few-shot answers can cost what 100 training examples do."""

from __future__ import annotations

from tunewise.core.catalog import Strategy
from tunewise.deciding.ladder import Ladder, strategies_for
from tunewise.deciding.plan import FIXED_SECONDS, MIN_TRAIN_SUBSAMPLE, planned_per_answer
from tunewise.deciding.training_steps import CURVE_SPREAD, RESERVED_LOOKS
from tunewise.evaluation.sequential import looks


def gives_way_to_training(ladder: Ladder, strategy: Strategy) -> bool:
    """Whether `strategy` (a prompting one after the baseline) is left out for step 3, and if
    so record it as not run, with the command that measures it anyway."""
    timing = ladder.timing
    if ladder.budget is None or timing is None or timing.train_seconds_per_example is None:
        return False
    far = all(
        r.sequential is not None and r.sequential.reason == "below the target"
        for r in ladder.results
    )
    if not ladder.results or not far:
        return False
    rounds = looks(len(ladder.test))[:RESERVED_LOOKS][-1]
    cost = rounds * planned_per_answer(timing, strategy)
    warm_up = timing.warm_up_examples
    smallest = min(MIN_TRAIN_SUBSAMPLE, CURVE_SPREAD * warm_up, ladder.train_examples)
    examples = smallest + warm_up
    reserve = (
        examples * timing.train_seconds_per_example
        + FIXED_SECONDS
        + timing.answers(timing.zero_shot_tokens, rounds)
    )
    if cost <= ladder.left() - reserve:
        return False
    why = (
        f"prompting is clear below the target, and {strategy.name}'s first {rounds} answers "
        f"(about {cost:.0f} s) would leave too little for the smallest useful fine-tuning "
        f"(about {reserve:.0f} s): step 3 first"
    )
    command = ladder.command(strategies_for(strategy.name))
    ladder.record(1, strategy.name, "not run: budget", why, estimated_seconds=cost, command=command)
    return True
