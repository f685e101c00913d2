"""few-shot: the zero-shot prompt plus k demonstrations drawn from the training split."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunewise.core.catalog import Strategy
from tunewise.core.specs import CandidateSpec


class FewShotCandidate(CandidateSpec):
    """The zero-shot prompt plus k demonstrations from the training split."""

    strategy: Literal["few-shot"]
    k: int = Field(default=8, ge=1, le=64, description="Number of demonstrations.")
    selection: Literal["stratified", "similar"] = Field(
        default="stratified",
        description="stratified: one seeded label-balanced set; similar: BM25 neighbours.",
    )
    redraws: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Seeded demo draws (set and order) for the consistency measure; 1 turns it "
        "off. Only stratified selection draws; similar demos are fixed per input.",
    )


STRATEGY = Strategy(
    "few-shot",
    "prompting",
    FewShotCandidate,
    "tunewise.strategies.few_shot.demos:prepare",
    "the zero-shot prompt plus k demonstrations from train",
    "Low",
    ladder="measured",
    rank=1,
    # Its extra measurement: the same prompt under re-drawn demo sets (consistency).
    hooks={"redraws": "tunewise.measuring.consistency:redraw"},
)
