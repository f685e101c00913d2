"""Documents -> overlapping token windows with offsets into the text, cut where the text breaks:
at a paragraph when one falls in the window's second half, else at a sentence end, else between
words; the overlap starts at a sentence when one starts inside it. Passages that end mid-sentence
hand a small reader half a fact."""

from __future__ import annotations

import re
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


_SENTENCE_END = re.compile(r"[.!?:;][\"')\]]*$")
WORD, SENTENCE, PARAGRAPH = 1, 2, 3  # how strong a break before a token is (0: inside a word)


def breaks(text: str, offsets: list[tuple[int, int]], tokens: list[str]) -> list[int]:
    """For each token, the strength of the break just before it."""
    strengths = [PARAGRAPH]
    for i in range(1, len(tokens)):
        if tokens[i].startswith("##"):  # a WordPiece continuation
            strengths.append(0)
            continue
        gap = text[offsets[i - 1][1] : offsets[i][0]]
        before = text[max(offsets[i - 1][0], offsets[i - 1][1] - 3) : offsets[i - 1][1]]
        if "\n\n" in gap or ("\n" in gap and text[offsets[i][0]] in "#-*|>"):
            strengths.append(PARAGRAPH)  # a blank line, or a markdown heading, item or table row
        elif (gap and _SENTENCE_END.search(before)) or "\n" in gap:
            strengths.append(SENTENCE)
        else:
            strengths.append(WORD if gap else 0)  # no space: inside a word, a number, a URL
    return strengths


def _cut(strengths: list[int], start: int, end: int, size: int) -> int:
    """Where the window from `start` ends (exclusive), at most at `end`: the last paragraph or
    else sentence break in its second half, else the last word break. A word longer than the
    whole window (a hash, a URL) stays in one piece, so that chunk runs past the window."""
    if end == len(strengths):
        return end
    for strength in (PARAGRAPH, SENTENCE, WORD):
        floor = start + 1 if strength == WORD else start + max(1, size // 2)
        for cut in range(end, floor - 1, -1):
            if strengths[cut] >= strength:
                return cut
    cut = end
    while cut < len(strengths) and not strengths[cut]:
        cut += 1
    return cut


def _next_start(strengths: list[int], start: int, end: int, overlap: int) -> int:
    """The next window starts at the first sentence start in the last `overlap` tokens of this
    one, or at `end` when this one ended a sentence; else `overlap` tokens before `end`, at a
    word start. Always after `start`."""
    first = max(end - overlap, start + 1)
    for strength in (SENTENCE, WORD):
        for i in range(first, end + 1):
            if strengths[i] >= strength:
                return i
    return end


def chunk_document(document: Document, tokenizer: Any, size: int, overlap: int) -> list[Chunk]:
    """Windows of at most `size` tokens (see the module's docstring for where they are cut)."""
    encoding = tokenizer.encode(document.text, add_special_tokens=False)
    offsets: list[tuple[int, int]] = encoding.offsets
    tokens: list[str] = encoding.tokens
    if not offsets:
        return []
    strengths = breaks(document.text, offsets, tokens)
    chunks: list[Chunk] = []
    start = 0
    while start < len(tokens):
        end = _cut(strengths, start, min(start + size, len(tokens)), size)
        text = document.text[offsets[start][0] : offsets[end - 1][1]].strip()
        if text:
            chunks.append(Chunk(f"{document.id}#{len(chunks)}", document.id, document.title, text))
        if end == len(tokens):
            break
        start = _next_start(strengths, start, end, overlap)
    return chunks


def chunk_documents(
    documents: Sequence[Document], tokenizer: Any, size: int, overlap: int
) -> list[Chunk]:
    return [c for d in documents for c in chunk_document(d, tokenizer, size, overlap)]
