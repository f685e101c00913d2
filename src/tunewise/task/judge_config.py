"""The `judge:` block of task.yaml: a model that grades open-ended answers."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from tunewise.core.catalog import first_in_ladder
from tunewise.core.strict import Strict


class Judge(Strict):
    """A model grading each answer against a rubric: `judge` is then a metric of every candidate."""

    model: str | None = Field(
        default=None,
        description="The judge's model spec (the embedded model, hf:ORG/NAME, a local folder or "
        "a named endpoint); default: the task's model.",
    )
    mode: Literal["pointwise", "pairwise"] = Field(
        default="pointwise",
        description="pointwise: a grade from 1 to `scale` per answer; pairwise: the answer against "
        "the baseline candidate's, asked in both orders, wins 1, ties 0.5.",
    )
    rubric: list[str] = Field(
        default_factory=list,
        description="Criteria in your words; default: built from the contract's objective, "
        "audience and output format, and agreement with the reference.",
    )
    scale: int = Field(default=5, ge=2, le=9, description="Pointwise grades run from 1 to this.")
    baseline: str = Field(
        default_factory=lambda: first_in_ladder("prompting"),
        description="pairwise: the candidate every other is compared with (measured first); "
        "default: the ladder's baseline, zero-shot.",
    )
    reference: bool = Field(
        default=True, description="Show the judge the reference answer beside the input."
    )
    rationale: bool = Field(
        default=False,
        description="Also ask the judge for a one-sentence reason after each verdict (one more "
        "generation per verdict, counted in its cost).",
    )
    grades: Path | None = Field(
        default=None,
        description="JSONL of human grades {example_id, output, grade} (grade in [0, 1]) to "
        "calibrate the judge against; without it, the judge's self-consistency is reported.",
    )
