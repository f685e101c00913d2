"""Documents -> overlapping token windows, cut at word boundaries, with offsets into the text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tunewise.retrieval.documents import Document


@dataclass(frozen=True)
class Chunk:
    """A passage of one document; `id` is "<doc id>#<n>", what predictions cite."""

    id: str
    doc_id: str
    title: str
    text: str

    @property
    def searchable(self) -> str:
        """What BM25 and the embedder read: the title helps later chunks that lack it."""
        return (
            f"{self.title}\n{self.text}" if self.title and self.title != self.doc_id else self.text
        )


def chunk_document(document: Document, tokenizer: Any, size: int, overlap: int) -> list[Chunk]:
    """Windows of at most `size` tokens, each starting `size - overlap` tokens after the last;
    a window never ends inside a word (WordPiece continuations start with ##)."""
    encoding = tokenizer.encode(document.text, add_special_tokens=False)
    offsets: list[tuple[int, int]] = encoding.offsets
    tokens: list[str] = encoding.tokens
    if not offsets:
        return []
    starts_word = [i == 0 or not tokens[i].startswith("##") for i in range(len(tokens))]
    chunks: list[Chunk] = []
    start = 0
    while start < len(tokens):
        end = min(start + size, len(tokens))
        # Back off to a word start so no word is split; a word longer than the whole window
        # (a hash, a URL) stays in one piece, so that chunk runs past the window.
        cut = end
        while cut < len(tokens) and not starts_word[cut] and cut > start + 1:
            cut -= 1
        if cut == start + 1 and cut < len(tokens) and not starts_word[cut]:
            cut = end
            while cut < len(tokens) and not starts_word[cut]:
                cut += 1
        end = cut
        text = document.text[offsets[start][0] : offsets[end - 1][1]].strip()
        if text:
            chunks.append(Chunk(f"{document.id}#{len(chunks)}", document.id, document.title, text))
        if end == len(tokens):
            break
        start = max(end - overlap, start + 1)
        while start < end and not starts_word[start]:
            start += 1
    return chunks


def chunk_documents(
    documents: Sequence[Document], tokenizer: Any, size: int, overlap: int
) -> list[Chunk]:
    return [c for d in documents for c in chunk_document(d, tokenizer, size, overlap)]
