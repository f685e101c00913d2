"""What every strategy's prepare() returns: a predictor that turns an example into a request."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tunewise.core.setup import Setup
from tunewise.inference.prompts import build_messages
from tunewise.models.backend import Backend, Message
from tunewise.task.config import Contract
from tunewise.task.data import Example


@dataclass(frozen=True)
class Request:
    """The exact conversation sent to the model for one example, and what went into it."""

    messages: list[Message]
    demo_ids: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # ids of the passages in the context, best first
    retrieved: tuple[str, ...] = ()  # document ids as retrieval ranked them (for recall/MRR)
    context_tokens: int | None = None  # prompt tokens, when a budget was applied
    spans: tuple[str, ...] | None = None  # extractive: the passages the answer is copied from
    # Work done for this request before the answer (reranking): added to its latency and tokens.
    overhead_seconds: float = 0.0
    overhead_tokens: int = 0


class Predictor(Protocol):
    """A prepared candidate: a backend plus the way it builds each request."""

    name: str
    strategy: str
    backend: Backend
    params: dict[str, Any]
    setup: Setup

    def request(self, example: Example) -> Request:
        """The request for one input; never looks at the example's output."""
        ...


@dataclass(frozen=True)
class RetrievalUse:
    """How a retrieving candidate answered: what the ladder's step-2 variants and the hybrid
    read back, typed (results.json keeps them in the candidate's params as well)."""

    answer: str = "free"  # free | extractive: generated, or copied from the passages
    rerank: int = 0  # passages reranked per question (0: none)
    verbatim_answers: float = 0.0  # share of training answers found verbatim in the documents


@runtime_checkable
class Retrieving(Protocol):
    """A predictor that retrieves from the task's documents: its index can be swapped for a
    document update (the freshness probe), and its passages are measured (grounding)."""

    index: Any
    retrieval: RetrievalUse

    def with_index(self, index: Any) -> Retrieving: ...


@dataclass
class PromptPredictor:
    """Contract system prompt, optional demos chosen per input, then the input."""

    name: str
    strategy: str
    backend: Backend
    contract: Contract
    choose_demos: Callable[[str], Sequence[Example]]
    params: dict[str, Any] = field(default_factory=dict)
    setup: Setup = field(default_factory=Setup)

    def request(self, example: Example) -> Request:
        demos = self.choose_demos(example.input)
        messages = build_messages(self.contract, example.input, demos)
        return Request(messages, tuple(demo.id for demo in demos))
