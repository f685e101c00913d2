"""Reranking by query likelihood, with a scripted model that likes one passage."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeEmbedder, ScriptedBackend
from test_rag import ISLAND, QUESTION, make_task, question

from tunewise.errors import TunewiseError
from tunewise.inference.cache import ResponseCache
from tunewise.inference.predict import predict
from tunewise.models.backend import LabelScores, Message
from tunewise.retrieval.index import Index, build_index
from tunewise.strategies.rag import RagCandidate
from tunewise.strategies.rag import retrieving as rag
from tunewise.strategies.rag.rerank import PROMPT


class Likes(ScriptedBackend):
    """Scores the question highest after the passage that mentions `word`, 0.5 s a pass."""

    def __init__(self, word: str, logprobs: bool = True) -> None:
        super().__init__(lambda messages: "1987")
        self.word, self.logprobs = word, logprobs

    def _score(self, messages: Sequence[Message], labels: Sequence[str]) -> LabelScores:
        self._record(messages)
        liked = self.word in messages[-1]["content"]
        given = {label: (-1.0 if liked else -9.0) for label in labels} if self.logprobs else None
        return LabelScores(labels[0], {labels[0]: 1.0}, 10, 2, 0.5, logprobs=given)


@pytest.fixture
def index(fake_embedder: FakeEmbedder, home: Path) -> Index:
    return build_index(ISLAND, make_task().retrieval, home)


def prepared(index: Index, backend: ScriptedBackend, **spec: Any) -> rag.RagPredictor:
    candidate = RagCandidate(strategy="rag", top_k=1, **spec)
    return rag.prepare(make_task(), candidate, [], backend, "rag", index=index)


def test_rerank_puts_the_passage_the_model_prefers_first(index: Index) -> None:
    plain = prepared(index, Likes("bakery")).request(question())
    assert plain.sources == ("volcano#0",)
    backend = Likes("bakery")
    reranked = prepared(index, backend, rerank=5).request(question())
    assert reranked.sources == ("bakery#0",)
    assert reranked.retrieved[0] == "bakery"  # recall and MRR see the reranked order
    # One scoring pass per reranked passage, of the question after the passage; the rest of the
    # ranking keeps its order behind them.
    scored = [call[-1]["content"] for call in backend.calls]
    assert len(scored) == 5 and all(s.startswith(PROMPT.split("{")[0]) for s in scored)
    assert (reranked.overhead_seconds, reranked.overhead_tokens) == (2.5, 50)
    assert prepared(index, Likes("bakery"), rerank=5).params["rerank"] == 5


def test_rerank_cost_is_in_the_answer_and_a_rerun_scores_nothing(index: Index, home: Path) -> None:
    backend = Likes("volcano")
    predictor = prepared(index, backend, rerank=3)
    cache = ResponseCache(home / "answers.sqlite")
    fmt = make_task().contract.output_format
    (answer,) = predict(predictor, [question()], fmt, cache, max_new_tokens=8)
    assert answer.latency_ms == pytest.approx((0.02 + 1.5) * 1000)
    assert answer.compute_ms == pytest.approx((0.02 + 1.5) * 1000)
    calls = len(backend.calls)
    again = prepared(index, backend, rerank=3)
    (cached,) = predict(again, [question()], fmt, cache, max_new_tokens=8)
    assert len(backend.calls) == calls  # the scores and the answer come from the caches
    assert cached.latency_ms == answer.latency_ms and cached.sources == answer.sources


def test_rerank_without_log_probabilities_says_so(index: Index) -> None:
    with pytest.raises(TunewiseError, match="rerank: 0"):
        prepared(index, Likes("bakery", logprobs=False), rerank=2).request(question(QUESTION))
