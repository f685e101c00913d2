"""A fine-tuning method from outside tunewise, in one file: (IA)3 through peft, which learns
scaling vectors for the attention keys and values and the feed-forward output instead of LoRA's
low-rank matrices. Registered by the entry point in tunewise_ia3-0.1.dist-info; tunewise's own
adapter training and answering serve it, chosen by nothing but this record."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tunewise.core.catalog import Strategy
from tunewise.core.specs import FineTuningOptions
from tunewise.core.training_method import TrainingMethod


class IA3Candidate(FineTuningOptions):
    strategy: Literal["ia3"]
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["k_proj", "v_proj", "down_proj"],
        description="Modules whose outputs (IA)3 rescales.",
    )
    feedforward_modules: list[str] = Field(
        default_factory=lambda: ["down_proj"],
        description="Of those, the feed-forward ones (rescaled on their input).",
    )
    # Scaling vectors start at one and move slowly: (IA)3's paper trains at 3e-3.
    learning_rate: float = Field(default=3e-3, gt=0)


def ia3_settings(spec: Any) -> dict[str, Any]:
    return {"target_modules": spec.target_modules, "feedforward_modules": spec.feedforward_modules}


STRATEGY = Strategy(
    "ia3",
    "fine-tuning",
    IA3Candidate,
    "tunewise.strategies.lora.adapter:prepare",  # the adapter recipe; the record picks the method
    "(IA)3 scaling vectors trained on train",
    "High",
    trains=True,
    ladder="measured",
    trainer=TrainingMethod("IA3", ia3_settings),
)
