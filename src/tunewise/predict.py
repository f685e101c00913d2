"""Run a prepared predictor over test inputs, through the response cache.

The cache lookup happens before the model is touched, so a fully cached run never loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tunewise.cache import ResponseCache, cache_key
from tunewise.data import Example
from tunewise.strategies.predictor import Predictor, Request
from tunewise.task import OutputFormat

GENERATION_BATCH = 8

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


def predict(
    predictor: Predictor,
    examples: Sequence[Example],
    output_format: OutputFormat,
    cache: ResponseCache,
    *,
    max_new_tokens: int,
    advance: Advance = lambda n: None,
) -> list[Prediction]:
    """Answers for every example, in the examples' order."""
    requests = [predictor.request(example) for example in examples]
    if output_format.type == "label":
        labels = list(output_format.labels)
        return [
            _score_one(predictor, example, request, labels, cache, advance)
            for example, request in zip(examples, requests, strict=True)
        ]
    return _generate_all(predictor, examples, requests, cache, max_new_tokens, advance)


def _key(predictor: Predictor, operation: str, request: Request, **params: Any) -> str:
    backend = predictor.backend
    return cache_key(
        model=backend.spec,
        weights=backend.fingerprint(),
        operation=operation,
        messages=request.messages,
        **params,
    )


def _score_one(
    predictor: Predictor,
    example: Example,
    request: Request,
    labels: list[str],
    cache: ResponseCache,
    advance: Advance,
) -> Prediction:
    key = _key(predictor, "score_labels", request, labels=labels)
    value = cache.get(key)
    cached = value is not None
    if value is None:
        value = asdict(predictor.backend.score_labels(request.messages, labels))
        cache.put(key, value)
    advance(1)
    return _prediction(predictor.name, example, request, value, cached)


def _prediction(
    candidate: str, example: Example, request: Request, value: dict[str, Any], cached: bool
) -> Prediction:
    """A Prediction from a cached or fresh LabelScores / Generation record."""
    return Prediction(
        candidate=candidate,
        example_id=example.id,
        output=value["label"] if "label" in value else value["text"],
        input_tokens=value["input_tokens"],
        output_tokens=value["output_tokens"],
        latency_ms=value["seconds"] * 1000,
        demo_ids=request.demo_ids,
        cached=cached,
        finish_reason=value.get("finish_reason", "stop"),
        probabilities=value.get("probabilities"),
        sources=request.sources,
        retrieved=request.retrieved,
        context_tokens=request.context_tokens,
        compute_ms=value.get("compute_seconds", value["seconds"]) * 1000,
    )


def _generate_all(
    predictor: Predictor,
    examples: Sequence[Example],
    requests: Sequence[Request],
    cache: ResponseCache,
    max_new_tokens: int,
    advance: Advance,
) -> list[Prediction]:
    keys = [_key(predictor, "generate", r, max_new_tokens=max_new_tokens) for r in requests]
    values: list[dict[str, Any] | None] = [cache.get(key) for key in keys]
    cached = [value is not None for value in values]
    advance(sum(cached))
    missing = [i for i, value in enumerate(values) if value is None]
    # Similar lengths batch together, so little compute goes to padding.
    missing.sort(key=lambda i: sum(len(m["content"]) for m in requests[i].messages))
    for start in range(0, len(missing), GENERATION_BATCH):
        chunk = missing[start : start + GENERATION_BATCH]
        answers = predictor.backend.generate([requests[i].messages for i in chunk], max_new_tokens)
        for i, answer in zip(chunk, answers, strict=True):
            values[i] = {**asdict(answer), "compute_seconds": answer.seconds / len(chunk)}
            cache.put(keys[i], values[i])
        advance(len(chunk))
    return [
        _prediction(predictor.name, example, request, value, was_cached)
        for example, request, value, was_cached in zip(
            examples, requests, values, cached, strict=True
        )
        if value is not None
    ]
