"""The one small interface every model backend implements, and the records it returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict


class Message(TypedDict):
    """One chat turn, in the shape chat templates and OpenAI-style APIs expect."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class LabelScores:
    """Log-likelihood of each label as the answer to one prompt, and what it cost."""

    label: str
    probabilities: dict[str, float]  # softmax over the labels' summed log-probs
    input_tokens: int
    output_tokens: int  # tokens of the chosen label, as a generation would have produced them
    seconds: float


@dataclass(frozen=True)
class Generation:
    """One generated answer, and what it cost."""

    text: str
    input_tokens: int
    output_tokens: int
    seconds: float  # wall time until this answer was ready (its whole batch, when batched)
    finish_reason: Literal["stop", "length"]


class Backend(Protocol):
    """A model that can answer prompts. Loading may be lazy: nothing is loaded until needed."""

    spec: str

    def fingerprint(self) -> str:
        """Content hash of the weights (and adapter), for cache keys and results."""
        ...

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens the model sees for these messages, chat template included."""
        ...

    def score_labels(self, messages: Sequence[Message], labels: Sequence[str]) -> LabelScores:
        """Score every label as the assistant's complete answer; pick the most likely."""
        ...

    def generate(self, batch: Sequence[Sequence[Message]], max_new_tokens: int) -> list[Generation]:
        """Greedy answers for a batch of conversations."""
        ...
