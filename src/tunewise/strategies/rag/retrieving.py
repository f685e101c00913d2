"""Step 2 of the framework: the contract prompt plus passages retrieved for each input.

The index is built once per run from the task's documents (retrieval/); a predictor can be
pointed at an updated index without any other change, which is how the freshness probe asks the
same candidate about patched documents.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tunewise.core.progress import Progress
from tunewise.core.setup import IndexBuild, Setup
from tunewise.core.specs import RetrievalOptions
from tunewise.errors import TunewiseError
from tunewise.inference.predictor import Request, RetrievalUse
from tunewise.inference.prompts import Passage, assemble
from tunewise.models.backend import Backend
from tunewise.models.local import LocalModel
from tunewise.retrieval.index import Index
from tunewise.strategies.few_shot.demos import stratified_demos
from tunewise.strategies.rag import RagCandidate
from tunewise.strategies.rag.extractive import answer_mode, extractive, verbatim_share
from tunewise.strategies.rag.rerank import Reranker, reranker
from tunewise.task.config import Contract, Task
from tunewise.task.data import Example

RANKED_FOR_METRICS = 10  # retrieval depth recorded per request, for recall@k and MRR


@dataclass
class RagPredictor:
    """Retrieve, assemble under the token budget, answer."""

    name: str
    strategy: str
    backend: Backend
    contract: Contract
    index: Index
    spec: RetrievalOptions
    demos: Sequence[Example] = ()
    params: dict[str, Any] = field(default_factory=dict)
    setup: Setup = field(default_factory=Setup)
    extractive: bool = False  # answers are copied from the passages (strategies/extractive.py)
    rerank: Reranker | None = None
    retrieval: RetrievalUse = field(default_factory=RetrievalUse)

    def request(self, example: Example) -> Request:
        depth = max(self.spec.top_k, RANKED_FOR_METRICS, self.spec.rerank)
        hits = self.index.search(example.input, depth, self.spec.retriever)
        reranked = self.rerank(example.input, hits) if self.rerank else None
        if reranked is not None:
            hits = reranked.hits
        passages = [Passage(h.chunk.id, h.chunk.title, h.chunk.text) for h in hits]
        built = assemble(
            self.contract,
            example.input,
            passages[: self.spec.top_k],
            self.demos,
            self.backend.count_tokens,
            self.spec.context_tokens,
        )
        return Request(
            built.messages,
            tuple(d.id for d in built.demos),
            sources=tuple(p.id for p in built.passages),
            retrieved=tuple(self.index.ranked_documents(hits)),
            context_tokens=built.tokens,
            spans=tuple(p.text for p in built.passages) if self.extractive else None,
            overhead_seconds=reranked.seconds if reranked else 0.0,
            overhead_tokens=reranked.input_tokens if reranked else 0,
        )

    def with_index(self, index: Index) -> RagPredictor:
        """The same candidate, retrieving from another version of the documents."""
        return replace(self, index=index)


def retrieval_params(
    spec: RetrievalOptions, index: Index, demos: Sequence[Example]
) -> dict[str, Any]:
    return {
        "retriever": spec.retriever,
        "top_k": spec.top_k,
        "context_tokens": spec.context_tokens,
        "demos": len(demos),
        "rerank": spec.rerank,
        "embedder": index.settings.embedder,
        "chunk_tokens": index.settings.chunk_tokens,
        "chunk_overlap": index.settings.chunk_overlap,
        "index": index.key,
    }


def require_index(index: Index | None, name: str) -> Index:
    if index is None:
        raise TunewiseError(f"candidate '{name}' retrieves from documents; set data.documents")
    return index


def prepare(
    task: Task,
    spec: RagCandidate,
    train: Sequence[Example],
    backend: Backend,
    name: str,
    progress: Progress | None = None,
    index: Index | None = None,
) -> RagPredictor:
    start = time.perf_counter()
    index = require_index(index, name)
    demos = stratified_demos(train, spec.demos, task.seed) if spec.demos else []
    predictor = RagPredictor(
        name,
        spec.strategy,
        backend,
        task.contract,
        index,
        spec,
        demos,
        params=retrieval_params(spec, index, demos),
        rerank=reranker(backend, spec.rerank),
        setup=Setup(
            seconds=index.build_seconds + time.perf_counter() - start, index=index_record(index)
        ),
    )
    return answering(task, predictor, train, name, progress)


def answering(
    task: Task,
    predictor: RagPredictor,
    train: Sequence[Example],
    name: str,
    progress: Progress | None,
) -> RagPredictor:
    """The predictor as `answer:` asks: free generation, or spans copied from the passages
    (auto decides by the share of training answers that are verbatim in the documents)."""
    share = verbatim_share(train, predictor.index)
    local = isinstance(predictor.backend, LocalModel)
    mode = answer_mode(task, predictor.spec.answer, share, local)
    params = {**predictor.params, "answer": mode, "verbatim_answers": round(share, 4)}
    use = RetrievalUse(mode, predictor.spec.rerank, round(share, 4))
    predictor = replace(predictor, params=params, retrieval=use)
    if mode == "free":
        return predictor
    return extractive(task, replace(predictor, extractive=True), train, name, progress)


def index_record(index: Index) -> IndexBuild:
    """What building the index cost, for the setup side of the comparison."""
    return IndexBuild(
        key=index.key,
        documents=index.documents,
        chunks=len(index.chunks),
        embedded_chunks=index.embedded_chunks,
        seconds=round(index.build_seconds, 3),
        cached=index.cached,
    )
