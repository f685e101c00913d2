"""optimized-prompt: instructions x demo sets searched on a validation slice of train."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunewise.core.catalog import Strategy
from tunewise.core.specs import CandidateSpec


class OptimizedPromptCandidate(CandidateSpec):
    """Step 1, searched: instruction candidates x demo sets scored on a validation slice of
    train by successive halving; the winner is then measured on test like any candidate."""

    strategy: Literal["optimized-prompt"]
    trials: int = Field(
        default=16, ge=1, le=256, description="Most (instruction, demo set) pairs searched."
    )
    k: int = Field(default=4, ge=1, le=64, description="Demonstrations per prompt.")
    instructions: int = Field(
        default=3,
        ge=0,
        le=32,
        description="Instructions the proposer writes; the contract's objective is always tried.",
    )
    validation_examples: int = Field(
        default=48,
        ge=2,
        description="Seeded slice of train the search scores on (at most half of train); the "
        "rest of train is the demo pool. The test split is never seen.",
    )
    proposer: str | None = Field(
        default=None,
        description="Model spec that writes the instructions; default: the candidate's own model.",
    )
    opt_in: bool = Field(
        default=False,
        description="Pin nothing: run when --strategies names this strategy, and give the "
        "ladder this strategy's settings when it reaches its step.",
    )


STRATEGY = Strategy(
    "optimized-prompt",
    "prompting",
    OptimizedPromptCandidate,
    "tunewise.strategies.optimized_prompt.prompt_search:prepare",
    "instructions x demo sets searched on a validation slice of train",
    "Medium",
    ladder="if-it-fits",
    rank=2,
    hooks={"fit_to_budget": "tunewise.strategies.optimized_prompt.trials_budget:fit_to_budget"},
)
