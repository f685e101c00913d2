"""hybrid: a LoRA adapter that answers with retrieved passages in its prompt (step 4)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunewise.core.catalog import Strategy
from tunewise.core.specs import FineTuningOptions, RetrievalOptions
from tunewise.strategies.lora import LORA


class HybridCandidate(FineTuningOptions, RetrievalOptions):
    """Step 4: a LoRA adapter that answers with retrieved passages in its prompt."""

    strategy: Literal["hybrid"]
    adapter: Literal["rag-trained", "plain"] = Field(
        default="rag-trained",
        description="rag-trained: train with retrieved passages in the prompts, as served; "
        "plain: reuse the lora candidate's adapter, trained without them.",
    )


STRATEGY = Strategy(
    "hybrid",
    "hybrid",
    HybridCandidate,
    "tunewise.strategies.hybrid.rag_trained:prepare",
    "a LoRA adapter that answers with retrieved passages in its prompt",
    "High",
    retrieves=True,
    trains=True,
    ladder="measured",
    rank=0,
    trainer=LORA,
)
