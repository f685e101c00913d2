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
from typing import Any, cast

from tunewise.core.keys import cache_key
from tunewise.errors import TunewiseError
from tunewise.home import tunewise_home
from tunewise.inference.cache import ResponseCache
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
        values = self._scores(question, [hit.chunk.searchable for hit in head])
        if any(not value.get("logprobs") for value in values):
            raise TunewiseError(
                f"rerank needs the log-probability of a text; {self.backend.spec} gives none: "
                "set rerank: 0"
            )
        scores = [value["logprobs"][question] for value in values]
        order = sorted(range(len(head)), key=lambda i: (-scores[i], i))
        ranked = [Hit(head[i].chunk, scores[i]) for i in order]
        seconds = sum(value["seconds"] for value in values)
        tokens = sum(value["input_tokens"] for value in values)
        return Reranked(ranked + tail, seconds, tokens)

    def _scores(self, question: str, passages: Sequence[str]) -> list[dict[str, Any]]:
        """The question's score after each passage: cached ones from the cache, the rest in one
        batch to the backend."""
        conversations = [[{"role": "user", "content": PROMPT.format(passage=p)}] for p in passages]
        weights = self.backend.fingerprint()
        keys = [
            cache_key(
                model=self.backend.spec,
                weights=weights,
                messages=messages,
                operation="score_labels",
                labels=[question],
            )
            for messages in conversations
        ]
        with self._lock:
            values = [self._cache.get(key) for key in keys]
        missing = [i for i, value in enumerate(values) if value is None]
        if missing:
            scored = self.backend.score_labels([conversations[i] for i in missing], [question])
            with self._lock:
                for i, score in zip(missing, scored, strict=True):
                    values[i] = asdict(score)
                    self._cache.put(keys[i], values[i])
        return cast(list[dict[str, Any]], values)  # every slot is filled now


def reranker(backend: Backend, depth: int) -> Reranker | None:
    return Reranker(backend, depth) if depth > 1 else None
