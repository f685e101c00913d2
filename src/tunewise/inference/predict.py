"""Run a prepared predictor over test inputs, through the response cache.

The cache lookup happens before the model is touched, so a fully cached run never loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from tunewise.core.keys import cache_key
from tunewise.inference.cache import ResponseCache
from tunewise.inference.predictor import Predictor, Request
from tunewise.models.backend import Backend, BatchIncomplete, Sampling
from tunewise.task.config import OutputFormat
from tunewise.task.data import Example

Advance = Callable[[int], None]


@dataclass(frozen=True)
class Prediction:
    """One candidate's answer to one test example, with what it cost."""

    candidate: str
    example_id: str
    output: str
    input_tokens: int
    output_tokens: int
    latency_ms: float  # until this answer was ready (a batched answer waits for its batch)
    demo_ids: tuple[str, ...]
    cached: bool
    finish_reason: str
    probabilities: dict[str, float] | None = None
    sources: tuple[str, ...] = ()  # passages in the context (retrieving candidates)
    retrieved: tuple[str, ...] = ()  # document ids in retrieval order
    context_tokens: int | None = None
    compute_ms: float | None = None  # this answer's share of the compute (batch time / batch size)
    tokens_estimated: bool = False  # the server reported no usage; token counts are estimates
    repairs: int = 0  # repair requests this answer took (tokens and time include them)
    first_output: str | None = None  # the answer before repair, when it was repaired
    confidence: float | None = None  # extractive: the span's mean token log-probability
    graded: dict[str, float] = field(default_factory=dict)  # graded metrics, once scored
    verdict: dict[str, Any] | None = None  # the model judge's verdict on this answer
    # Label tasks: how the labels were scored (LabelScores.scoring); None for generations.
    label_scoring: str | None = None


@dataclass
class Spent:
    """What a model's calls cost: requests asked, fresh calls (not from the cache), compute
    seconds (cached answers keep their measured time) and tokens."""

    requests: int = 0
    calls: int = 0
    seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, predictions: Sequence[Prediction]) -> None:
        for p in predictions:
            self.requests += 1
            self.calls += not p.cached
            self.seconds += (p.latency_ms if p.compute_ms is None else p.compute_ms) / 1000
            self.input_tokens += p.input_tokens
            self.output_tokens += p.output_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "seconds": round(self.seconds, 4),
        }


def predict(
    predictor: Predictor,
    examples: Sequence[Example],
    output_format: OutputFormat,
    cache: ResponseCache,
    *,
    max_new_tokens: int,
    advance: Advance = lambda n: None,
    sampling: Sampling | None = None,
) -> list[Prediction]:
    """Answers for every example, in the examples' order (sampled with `sampling`, generation
    only). Each answer is cached as soon as it exists, so an interrupted or failed run resumes
    with only the rest."""
    backend = predictor.backend
    requests = [predictor.request(example) for example in examples]
    answer: Callable[[list[Request]], Sequence[Any]]
    if output_format.type == "label":
        labels = list(output_format.labels)
        params: dict[str, Any] = {"operation": "score_labels", "labels": labels}
        answer = lambda chunk: backend.score_labels([r.messages for r in chunk], labels)  # noqa: E731
    else:
        params = {"operation": "generate", "max_new_tokens": max_new_tokens}
        if sampling is not None:  # greedy answers keep the keys they always had
            params |= {"temperature": sampling.temperature, "seed": sampling.seed}
        answer = partial(_generate, backend, max_new_tokens=max_new_tokens, sampling=sampling)
    keys = [
        cache_key(model=backend.spec, weights=backend.fingerprint(), messages=r.messages, **params)
        for r in requests
    ]
    values: list[dict[str, Any] | None] = [cache.get(key) for key in keys]
    cached = [value is not None for value in values]
    advance(sum(cached))
    missing = [i for i, value in enumerate(values) if value is None]
    # Similar lengths batch together, so little compute goes to padding.
    missing.sort(key=lambda i: sum(len(m["content"]) for m in requests[i].messages))
    size = backend.batch_size
    if output_format.type == "label":  # a backend that scores one input at a time says so
        size = getattr(backend, "label_batch_size", size)
    for start in range(0, len(missing), size):
        chunk = missing[start : start + size]
        try:
            answers: Sequence[Any] = answer([requests[i] for i in chunk])
        except BatchIncomplete as incomplete:
            for i, done in zip(chunk, incomplete.done, strict=True):
                if done is not None:
                    cache.put(keys[i], asdict(done))
            raise incomplete.error from None
        for i, done in zip(chunk, answers, strict=True):
            values[i] = asdict(done)
            cache.put(keys[i], values[i])
        advance(len(chunk))
    return [
        _prediction(predictor.name, example, request, value, was_cached)
        for example, request, value, was_cached in zip(
            examples, requests, values, cached, strict=True
        )
        if value is not None
    ]


def _generate(
    backend: Backend, chunk: list[Request], *, max_new_tokens: int, sampling: Sampling | None
) -> Sequence[Any]:
    """Generations for a chunk; an extractive candidate's requests carry their passages."""
    messages = [r.messages for r in chunk]
    if any(r.spans is not None for r in chunk):
        spans = [r.spans or () for r in chunk]
        return backend.generate(  # type: ignore[call-arg]
            messages, max_new_tokens=max_new_tokens, sampling=sampling, spans=spans
        )
    return backend.generate(messages, max_new_tokens=max_new_tokens, sampling=sampling)


def _prediction(
    candidate: str, example: Example, request: Request, value: dict[str, Any], cached: bool
) -> Prediction:
    """A Prediction from a cached or fresh LabelScores / Generation record."""
    compute = value.get("compute_seconds")
    return Prediction(
        candidate=candidate,
        example_id=example.id,
        output=value["label"] if "label" in value else value["text"],
        input_tokens=value["input_tokens"] + request.overhead_tokens,
        output_tokens=value["output_tokens"],
        latency_ms=(value["seconds"] + request.overhead_seconds) * 1000,
        demo_ids=request.demo_ids,
        cached=cached,
        finish_reason=value.get("finish_reason", "stop"),
        probabilities=value.get("probabilities"),
        sources=request.sources,
        retrieved=request.retrieved,
        context_tokens=request.context_tokens,
        compute_ms=((value["seconds"] if compute is None else compute) + request.overhead_seconds)
        * 1000,
        tokens_estimated=value.get("tokens_estimated", False),
        confidence=value.get("confidence"),
        # Answers cached before scoring was recorded came from local models: likelihood.
        label_scoring=value.get("scoring", "likelihood") if "label" in value else None,
    )
