"""Reranking retrieved passages by query likelihood: the answering model's log-probability of the
question given each passage (Sachan et al., "Improving Passage Retrieval with Zero-Shot Question
Generation", 2022). It needs no second model, works with any backend that scores labels, and
reads passage and question together, which neither BM25 nor a bi-encoder does.

Each score goes through the response cache, so a rerun pays nothing again; the seconds and
tokens of the scoring passes are added to the answer's own, never hidden."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from tunewise.errors import TunewiseError
from tunewise.home import tunewise_home
from tunewise.inference.cache import ResponseCache, cache_key
from tunewise.models.backend import Backend
from tunewise.retrieval.index import Hit

PROMPT = "Passage:\n{passage}\n\nWrite one question that this passage answers."


@dataclass(frozen=True)
class Reranked:
    hits: list[Hit]
    seconds: float  # scoring passes, as recorded when they ran
    input_tokens: int


@dataclass
class Reranker:
    """Reorders the first `depth` hits; the rest keep their place behind them."""

    backend: Backend
    depth: int
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @cached_property
    def _cache(self) -> ResponseCache:
        # A served candidate reranks on the server's worker threads: one lock around the cache.
        return ResponseCache(tunewise_home() / "cache.sqlite", any_thread=True)

    def __call__(self, question: str, hits: Sequence[Hit]) -> Reranked:
        head, tail = list(hits[: self.depth]), list(hits[self.depth :])
        scores, seconds, tokens = [], 0.0, 0
        for hit in head:
            value = self._score(question, hit.chunk.searchable)
            if not value.get("logprobs"):
                raise TunewiseError(
                    f"rerank needs the log-probability of a text; {self.backend.spec} gives "
                    "none: set rerank: 0"
                )
            scores.append(value["logprobs"][question])
            seconds += value["seconds"]
            tokens += value["input_tokens"]
        order = sorted(range(len(head)), key=lambda i: (-scores[i], i))
        ranked = [Hit(head[i].chunk, scores[i]) for i in order]
        return Reranked(ranked + tail, seconds, tokens)

    def _score(self, question: str, passage: str) -> dict[str, Any]:
        messages = [{"role": "user", "content": PROMPT.format(passage=passage)}]
        key = cache_key(
            model=self.backend.spec,
            weights=self.backend.fingerprint(),
            messages=messages,
            operation="score_labels",
            labels=[question],
        )
        with self._lock:
            value = self._cache.get(key)
        if value is None:
            value = asdict(self.backend.score_labels([messages], [question])[0])
            with self._lock:
                self._cache.put(key, value)
        return value


def reranker(backend: Backend, depth: int) -> Reranker | None:
    return Reranker(backend, depth) if depth > 1 else None
