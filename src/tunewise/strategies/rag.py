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

from tunewise.errors import TunewiseError
from tunewise.measuring.progress import Progress
from tunewise.models.backend import Backend
from tunewise.retrieval.index import Index
from tunewise.strategies.few_shot import stratified_demos
from tunewise.strategies.predictor import Request
from tunewise.strategies.prompts import Passage, assemble
from tunewise.strategies.specs import RagCandidate, RetrievalOptions
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
    setup_seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def request(self, example: Example) -> Request:
        depth = max(self.spec.top_k, RANKED_FOR_METRICS)
        hits = self.index.search(example.input, depth, self.spec.retriever)
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
    return RagPredictor(
        name,
        spec.strategy,
        backend,
        task.contract,
        index,
        spec,
        demos,
        index.build_seconds + time.perf_counter() - start,
        retrieval_params(spec, index, demos),
        {"index": index_record(index)},
    )


def index_record(index: Index) -> dict[str, Any]:
    """What building the index cost, for the setup side of the comparison."""
    return {
        "key": index.key,
        "documents": index.documents,
        "chunks": len(index.chunks),
        "embedded_chunks": index.embedded_chunks,
        "seconds": round(index.build_seconds, 3),
        "cached": index.cached,
    }
