"""The one small interface every model backend implements, and the records it returns."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict, TypeVar


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
    tokens_estimated: bool = False  # the server reported no usage; counts are estimates
    logprobs: dict[str, float] | None = None  # summed log-prob per label, where the model gives it
    # How the labels were scored: likelihood (each label whole, as local models always do),
    # constrained, first-token (read from a generated answer's logprobs) or parsed (its text).
    scoring: str = "likelihood"


@dataclass(frozen=True)
class Generation:
    """One generated answer, and what it cost."""

    text: str
    input_tokens: int
    output_tokens: int
    seconds: float  # wall time until this answer was ready (its whole batch, when batched)
    finish_reason: Literal["stop", "length"]
    tokens_estimated: bool = False  # the server reported no usage; counts are estimates
    compute_seconds: float | None = None  # this answer's own share of compute, when known
    confidence: float | None = None  # extractive answers: the span's mean token log-probability


@dataclass(frozen=True)
class Sampling:
    """Sampled rather than greedy decoding, to measure how much answers move between samples."""

    temperature: float
    seed: int


class BatchIncomplete(Exception):
    """Some answers of a batch failed for good; `done` keeps the others (None where failed),
    so the caller can cache them before reporting `error`."""

    def __init__(self, done: Sequence[LabelScores | Generation | None], error: BaseException):
        super().__init__(str(error))
        self.done = list(done)
        self.error = error


Item = TypeVar("Item")
Result = TypeVar("Result", LabelScores, Generation)


def one_by_one(items: Sequence[Item], answer: Callable[[Item], Result]) -> list[Result]:
    """Answer items in turn; if one fails (or the run is interrupted) after others succeeded,
    raise BatchIncomplete so the finished answers are kept."""
    done: list[Result] = []
    for item in items:
        try:
            done.append(answer(item))
        except BaseException as error:
            if not done:
                raise
            raise BatchIncomplete([*done, *[None] * (len(items) - len(done))], error) from error
    return done


class Backend(Protocol):
    """A model that can answer prompts. Loading may be lazy: nothing is loaded until needed."""

    spec: str
    batch_size: int  # conversations worth sending in one call (a remote backend's concurrency)

    def fingerprint(self) -> str:
        """Content hash of the weights (and adapter), for cache keys and results."""
        ...

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens the model sees for these messages, chat template included."""
        ...

    def score_labels(
        self, batch: Sequence[Sequence[Message]], labels: Sequence[str]
    ) -> list[LabelScores]:
        """Score every label as the assistant's complete answer to each conversation; pick the
        most likely. Raises BatchIncomplete when only some conversations got an answer."""
        ...

    def generate(
        self,
        batch: Sequence[Sequence[Message]],
        max_new_tokens: int,
        sampling: Sampling | None = None,
    ) -> list[Generation]:
        """Greedy answers (sampled ones with `sampling`) for a batch of conversations. Raises
        BatchIncomplete when only some conversations got an answer."""
        ...
