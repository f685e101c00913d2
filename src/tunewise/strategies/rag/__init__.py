"""rag: the contract prompt plus passages retrieved from the task's documents (step 2)."""

from __future__ import annotations

from typing import Literal

from tunewise.core.catalog import Strategy
from tunewise.core.specs import RetrievalOptions


class RagCandidate(RetrievalOptions):
    """Step 2: the contract prompt plus passages retrieved from the task's documents."""

    strategy: Literal["rag"]


STRATEGY = Strategy(
    "rag",
    "retrieval",
    RagCandidate,
    "tunewise.strategies.rag.retrieving:prepare",
    "the contract prompt plus passages retrieved from data.documents",
    "Low-medium",
    retrieves=True,
    ladder="measured",
    rank=0,
)
