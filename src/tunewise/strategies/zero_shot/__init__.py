"""zero-shot: a system prompt built from the task's contract, then the input (step 1's baseline)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from tunewise.core.catalog import Strategy
from tunewise.core.specs import CandidateSpec


class ZeroShotCandidate(CandidateSpec):
    """A system prompt built from the contract, then the input."""

    strategy: Literal["zero-shot"]
    prompt_file: Path | None = Field(
        default=None,
        description="An exported prompt (tunewise export --format openai-messages) measured "
        "instead of the contract's: exactly its messages, each input in place of {{input}}. "
        "Relative to the task file's folder.",
    )


STRATEGY = Strategy(
    "zero-shot",
    "prompting",
    ZeroShotCandidate,
    "tunewise.strategies.zero_shot.contract_prompt:prepare",
    "a system prompt built from the contract, then the input",
    "Low",
    ladder="baseline",
    rank=0,
)
