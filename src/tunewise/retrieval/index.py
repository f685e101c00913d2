"""A searchable index of document chunks: BM25 (bm25s), dense embeddings, reciprocal-rank fusion.

An index is persisted under $TUNEWISE_HOME/indexes/<key>, where the key is a content hash of
(documents, chunking, embedder); it appears whole or not at all. Chunk embeddings are also kept in
a per-embedder sqlite store keyed by the chunk's text, so when documents change only the chunks
of changed documents are embedded again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tunewise.core.keys import cache_key
from tunewise.errors import DataError
from tunewise.retrieval.chunking import Chunk, chunk_documents
from tunewise.retrieval.documents import Document, documents_hash
from tunewise.retrieval.embedders import Embedder, chunk_tokenizer, load_embedder
from tunewise.task.config import Retrieval

Method = Literal["fusion", "bm25", "dense"]
INDEX_FORMAT = 2  # 2: chunks cut at paragraphs and sentences
RRF_K = 60  # the constant of Cormack et al.'s reciprocal-rank fusion
_POOL = 50  # hits each ranker contributes before fusion


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float


@dataclass
class Index:
    """Chunks with their embeddings; BM25 is rebuilt from the chunks on load (milliseconds)."""

    key: str
    settings: Retrieval
    documents: int
    chunks: list[Chunk]
    embeddings: np.ndarray
    embedder: Embedder
    build_seconds: float = 0.0  # to chunk and embed, as recorded when it was built
    embedded_chunks: int = 0  # chunks embedded anew by this build (0 when loaded)
    cached: bool = False  # loaded from the index cache: this run built nothing
    _bm25: Any = field(default=None, repr=False)
    _queries: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def search(self, query: str, k: int, method: Method = "fusion") -> list[Hit]:
        """The k best chunks for a query, best first."""
        k = min(k, len(self.chunks))
        if method == "bm25":
            return self._bm25_hits(query, k)
        if method == "dense":
            return self._dense_hits(query, k)
        fused: dict[int, float] = {}
        for ranking in (self._bm25_hits(query, _POOL), self._dense_hits(query, _POOL)):
            for rank, hit in enumerate(ranking):
                position = self._position[hit.chunk.id]
                fused[position] = fused.get(position, 0.0) + 1.0 / (RRF_K + rank + 1)
        best = sorted(fused, key=lambda i: (-fused[i], i))[:k]
        return [Hit(self.chunks[i], fused[i]) for i in best]

    def ranked_documents(self, hits: Sequence[Hit]) -> list[str]:
        """Document ids in the order their first chunk was retrieved."""
        return list(dict.fromkeys(hit.chunk.doc_id for hit in hits))

    @cached_property
    def _position(self) -> dict[str, int]:
        return {chunk.id: i for i, chunk in enumerate(self.chunks)}

    def _bm25_hits(self, query: str, k: int) -> list[Hit]:
        import bm25s

        k = min(k, len(self.chunks))
        if self._bm25 is None:
            self._bm25 = bm25s.BM25()
            corpus = [_terms(chunk.searchable) for chunk in self.chunks]
            self._bm25.index(corpus, show_progress=False)
        terms = _terms(query)
        if not terms:
            return []
        indices, scores = self._bm25.retrieve([terms], k=k, show_progress=False)
        return [
            Hit(self.chunks[int(i)], float(s))
            for i, s in zip(indices[0], scores[0], strict=True)
            if s > 0
        ]

    def _dense_hits(self, query: str, k: int) -> list[Hit]:
        k = min(k, len(self.chunks))
        if query not in self._queries:
            self._queries[query] = self.embedder.queries([query])[0]
        scores = self.embeddings @ self._queries[query]
        best = np.argsort(-scores, kind="stable")[:k]
        return [Hit(self.chunks[int(i)], float(scores[i])) for i in best]


def _terms(text: str) -> list[str]:
    import bm25s

    # English stopwords out, as BM25 implementations usually do; tokens as bm25s splits them.
    tokens = bm25s.tokenize([text], stopwords="en", return_ids=False, show_progress=False)
    return list(tokens[0])


def index_key(documents: Sequence[Document], settings: Retrieval) -> str:
    return cache_key(
        documents=documents_hash(documents), settings=settings.model_dump(), format=INDEX_FORMAT
    )


def build_index(
    documents: Sequence[Document],
    settings: Retrieval,
    home: Path,
    *,
    stage: Callable[[int], Callable[[int], None]] | None = None,
) -> Index:
    """Load the index of these documents, or build and persist it (embedding only new chunks);
    `stage(total)` starts a progress stage over the chunks to embed."""
    if not documents:
        raise DataError("documents", None, None, "no documents to index")
    start = time.perf_counter()
    key = index_key(documents, settings)
    folder = home / "indexes" / key
    embedder = load_embedder(settings.embedder)
    if (folder / "index.json").exists():
        return _load(folder, key, settings, embedder)
    chunks = chunk_documents(
        documents, chunk_tokenizer(), settings.chunk_tokens, settings.chunk_overlap
    )
    store = EmbeddingStore(home / "embeddings" / f"{settings.embedder}.sqlite")
    advance = stage(len(chunks)) if stage else (lambda n: None)
    try:
        embeddings = store.embed([c.searchable for c in chunks], embedder, advance)
        embedded = store.embedded
    finally:
        store.close()
    seconds = time.perf_counter() - start
    _save(folder, chunks, embeddings, len(documents), settings, seconds)
    return Index(key, settings, len(documents), chunks, embeddings, embedder, seconds, embedded)


def _save(
    folder: Path,
    chunks: list[Chunk],
    embeddings: np.ndarray,
    documents: int,
    settings: Retrieval,
    seconds: float,
) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        with (staging / "chunks.jsonl").open("w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(json.dumps(asdict(chunk), ensure_ascii=False) + "\n")
        np.save(staging / "embeddings.npy", embeddings)
        meta = {
            "documents": documents,
            "chunks": len(chunks),
            "build_seconds": round(seconds, 3),
            **settings.model_dump(),
        }
        (staging / "index.json").write_text(json.dumps(meta, indent=2) + "\n")
        try:
            os.rename(staging, folder)
        except OSError:
            if not (folder / "index.json").exists():  # else a concurrent run built the same
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _load(folder: Path, key: str, settings: Retrieval, embedder: Embedder) -> Index:
    with (folder / "chunks.jsonl").open(encoding="utf-8") as handle:
        chunks = [Chunk(**json.loads(line)) for line in handle]
    embeddings = np.load(folder / "embeddings.npy")
    meta = json.loads((folder / "index.json").read_text())
    # A cached index keeps what building it cost, as a cached adapter keeps its training time.
    seconds = float(meta.get("build_seconds", 0.0))
    return Index(key, settings, meta["documents"], chunks, embeddings, embedder, seconds, 0, True)


class EmbeddingStore:
    """Passage vectors by sha256 of the text they embed, one sqlite file per embedder."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, v BLOB)")
        self._db.commit()
        self.embedded = 0  # texts this store has sent to the embedder

    def embed(
        self,
        texts: Sequence[str],
        embedder: Embedder,
        advance: Callable[[int], None] = lambda n: None,
        batch: int = 64,
    ) -> np.ndarray:
        keys = [hashlib.sha256(text.encode()).hexdigest() for text in texts]
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(f"SELECT key, v FROM vectors WHERE key IN ({marks})", part)
            found.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in rows)
        missing = list({key: i for i, key in enumerate(keys) if key not in found}.values())
        advance(len(keys) - len(missing))  # one embedding per distinct text
        for start in range(0, len(missing), batch):
            chunk = missing[start : start + batch]
            vectors = embedder.passages([texts[i] for i in chunk])
            self.embedded += len(chunk)
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO vectors (key, v) VALUES (?, ?)",
                    [
                        (keys[i], v.astype(np.float32).tobytes())
                        for i, v in zip(chunk, vectors, strict=True)
                    ],
                )
            found.update(
                (keys[i], v.astype(np.float32)) for i, v in zip(chunk, vectors, strict=True)
            )
            advance(len(chunk))
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([found[key] for key in keys])

    def close(self) -> None:
        self._db.close()
