"""The prompt search fitted to the ladder's budget: fewer trials when only some fit."""

from __future__ import annotations

import math

from tunewise.core.catalog import Fitted
from tunewise.strategies.optimized_prompt import OptimizedPromptCandidate

MIN_TRIALS = 2  # one trial is just the few-shot prompt again


def fit_to_budget(
    spec: OptimizedPromptCandidate,
    *,
    seconds: float | None,
    per_answer: float,
    train_examples: int,
    test_examples: int,
) -> Fitted:
    """Successive halving asks about half of trials x validation answers, then the test set;
    `seconds` is the room left beside the later steps' reserve (None: no budget)."""
    validation = min(spec.validation_examples, train_examples // 2)
    if validation < 2:
        return Fitted(None, 0.0)  # too few training examples to search on: nothing to say
    per_trial = 0.5 * validation * per_answer
    answering = test_examples * per_answer
    estimate = spec.trials * per_trial + answering
    trials = spec.trials
    if seconds is not None:
        trials = min(trials, math.floor((seconds - answering) / max(per_trial, 1e-9)))
    if trials < MIN_TRIALS:
        why = f"the prompt search needs about {estimate:.0f} s and leaves too little for step 3"
        return Fitted(None, estimate, why_not=why)
    if trials == spec.trials:
        return Fitted(spec, estimate)
    fewer = spec.model_copy(update={"trials": trials})
    return Fitted(fewer, estimate, (("trials", spec.trials, trials),))
