"""predict(): label scoring and batched generation through the response cache; resuming."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import SENTIMENT_TEST, ScriptedBackend

from tunewise.inference.cache import ResponseCache
from tunewise.inference.predict import Prediction, predict
from tunewise.inference.predictor import PromptPredictor
from tunewise.models.backend import Message
from tunewise.task.config import Contract
from tunewise.task.data import Example

LABEL_FORMAT = {"type": "label", "labels": ["positive", "negative", "neutral"]}
TEXT_FORMAT = {"type": "text"}


def contract(output_format: dict[str, Any], objective: str = "Classify the review.") -> Contract:
    return Contract.model_validate(
        {
            "objective": objective,
            "audience": "Analysts.",
            "source_material": "The sentence.",
            "output_format": output_format,
        }
    )


def examples(rows: Sequence[tuple[str, str]]) -> list[Example]:
    return [Example(f"test-{i}", x, y, f"test.jsonl:{i + 1}") for i, (x, y) in enumerate(rows)]


def predictor(backend: ScriptedBackend, c: Contract) -> PromptPredictor:
    return PromptPredictor("zero-shot", "zero-shot", backend, c, lambda _: ())


def run(
    backend: ScriptedBackend,
    c: Contract,
    items: Sequence[Example],
    cache_path: Path,
    advance: Any = None,
) -> list[Prediction]:
    cache = ResponseCache(cache_path)
    try:
        kwargs = {"advance": advance} if advance else {}
        return predict(
            predictor(backend, c), items, c.output_format, cache, max_new_tokens=16, **kwargs
        )
    finally:
        cache.close()


def uncached(predictions: Sequence[Prediction]) -> list[Prediction]:
    return [dataclasses.replace(p, cached=False) for p in predictions]


def last_user(messages: Sequence[Message]) -> str:
    return messages[-1]["content"]


TESTS = examples(SENTIMENT_TEST)
LABEL = contract(LABEL_FORMAT)
TEXT = contract(TEXT_FORMAT)


# ---- both formats --------------------------------------------------------------------------


def test_label_predictions_follow_the_backend(scripted: ScriptedBackend, home: Path) -> None:
    predictions = run(scripted, LABEL, TESTS, home / "cache.sqlite")
    assert [p.example_id for p in predictions] == [e.id for e in TESTS]
    assert [p.output for p in predictions] == [
        "positive",
        "positive",
        "negative",
        "neutral",
        "neutral",
        "neutral",
    ]
    first = predictions[0]
    assert first.candidate == "zero-shot"
    assert first.probabilities is not None
    assert set(first.probabilities) == set(LABEL_FORMAT["labels"])
    assert first.probabilities["positive"] == pytest.approx(0.7)
    assert first.latency_ms == pytest.approx(10.0)
    assert first.output_tokens == 2
    assert first.input_tokens == scripted.count_tokens(scripted.calls[0])
    assert first.finish_reason == "stop"
    assert not any(p.cached for p in predictions)
    assert len(scripted.calls) == len(TESTS)


def test_text_predictions_follow_the_backend(scripted: ScriptedBackend, home: Path) -> None:
    scripted.rule = lambda messages: last_user(messages).upper()
    predictions = run(scripted, TEXT, TESTS, home / "cache.sqlite")
    assert [p.output for p in predictions] == [e.input.upper() for e in TESTS]
    assert all(p.probabilities is None for p in predictions)
    assert all(p.output_tokens == 3 and p.latency_ms == pytest.approx(20.0) for p in predictions)
    assert len(scripted.calls) == len(TESTS)


@pytest.mark.parametrize("output_format", [LABEL_FORMAT, TEXT_FORMAT], ids=["label", "text"])
def test_advance_counts_every_example_cached_or_not(
    scripted: ScriptedBackend, home: Path, output_format: dict[str, Any]
) -> None:
    c = contract(output_format)
    for _ in range(2):  # second pass is fully cached
        steps: list[int] = []
        run(scripted, c, TESTS, home / "cache.sqlite", advance=steps.append)
        assert sum(steps) == len(TESTS)


def test_labels_are_cached_in_the_backends_label_chunks(
    scripted: ScriptedBackend, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Generation goes in wide batches; inputs scored one at a time are cached in small
    chunks, so a killed run keeps most of its work."""
    monkeypatch.setattr(scripted, "batch_size", 32, raising=False)
    monkeypatch.setattr(scripted, "label_batch_size", 2, raising=False)
    steps: list[int] = []
    run(scripted, LABEL, TESTS, home / "cache.sqlite", advance=steps.append)
    assert steps == [0, 2, 2, 2]  # nothing cached yet, then three chunks of two
    steps.clear()
    run(scripted, TEXT, TESTS, home / "text.sqlite", advance=steps.append)
    assert steps == [0, len(TESTS)]


# ---- the response cache --------------------------------------------------------------------


@pytest.mark.parametrize("output_format", [LABEL_FORMAT, TEXT_FORMAT], ids=["label", "text"])
def test_second_run_is_served_from_the_cache(
    scripted: ScriptedBackend, home: Path, output_format: dict[str, Any]
) -> None:
    c = contract(output_format)
    first = run(scripted, c, TESTS, home / "cache.sqlite")
    calls = len(scripted.calls)
    assert calls == len(TESTS)
    second = run(scripted, c, TESTS, home / "cache.sqlite")  # fresh ResponseCache, same file
    assert len(scripted.calls) == calls
    assert all(p.cached for p in second)
    assert not any(p.cached for p in first)
    assert uncached(second) == first


def test_a_changed_prompt_misses_the_cache(scripted: ScriptedBackend, home: Path) -> None:
    run(scripted, LABEL, TESTS, home / "cache.sqlite")
    changed = contract(LABEL_FORMAT, objective="Classify the review's tone.")
    before = len(scripted.calls)
    predictions = run(scripted, changed, TESTS, home / "cache.sqlite")
    assert len(scripted.calls) == before + len(TESTS)
    assert not any(p.cached for p in predictions)
    assert "tone" in scripted.calls[-1][0]["content"]


@pytest.mark.parametrize("output_format", [LABEL_FORMAT, TEXT_FORMAT], ids=["label", "text"])
def test_other_weights_miss_the_cache(
    scripted: ScriptedBackend,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    output_format: dict[str, Any],
) -> None:
    c = contract(output_format)
    run(scripted, c, TESTS, home / "cache.sqlite")
    monkeypatch.setattr(scripted, "fingerprint", lambda: "scripted-weights-v2")
    before = len(scripted.calls)
    predictions = run(scripted, c, TESTS, home / "cache.sqlite")
    assert len(scripted.calls) == before + len(TESTS)
    assert not any(p.cached for p in predictions)


def test_other_labels_miss_the_cache(scripted: ScriptedBackend, home: Path) -> None:
    run(scripted, LABEL, TESTS, home / "cache.sqlite")
    fewer = contract({"type": "label", "labels": ["positive", "negative"]})
    before = len(scripted.calls)
    predictions = run(scripted, fewer, TESTS, home / "cache.sqlite")
    assert len(scripted.calls) == before + len(TESTS)
    assert {p.output for p in predictions} <= {"positive", "negative"}


# ---- interruption and resume ---------------------------------------------------------------


def test_interrupted_label_run_resumes_with_only_the_rest(
    scripted: ScriptedBackend, home: Path, tmp_path: Path
) -> None:
    reference = run(ScriptedBackend(scripted.rule), LABEL, TESTS, tmp_path / "other.sqlite")

    scripted.fail_after = 3
    with pytest.raises(KeyboardInterrupt):
        run(scripted, LABEL, TESTS, home / "cache.sqlite")
    assert len(scripted.calls) == 3

    scripted.fail_after = None
    resumed = run(scripted, LABEL, TESTS, home / "cache.sqlite")
    first = {last_user(m) for m in scripted.calls[:3]}
    later = [last_user(m) for m in scripted.calls[3:]]
    assert sorted(later) == sorted(e.input for e in TESTS if e.input not in first)
    assert [p.cached for p in resumed] == [e.input in first for e in TESTS]
    assert uncached(resumed) == reference


def test_interrupted_generation_keeps_finished_batches(
    scripted: ScriptedBackend, home: Path, tmp_path: Path
) -> None:
    scripted.rule = lambda messages: last_user(messages)[::-1]
    many = examples([(f"input number {i:02d} " + "x" * i, "ref") for i in range(12)])
    reference = run(ScriptedBackend(scripted.rule), TEXT, many, tmp_path / "other.sqlite")

    scripted.fail_after = ScriptedBackend.batch_size + 2  # dies inside the second batch
    with pytest.raises(KeyboardInterrupt):
        run(scripted, TEXT, many, home / "cache.sqlite")

    scripted.fail_after = None
    before = len(scripted.calls)
    resumed = run(scripted, TEXT, many, home / "cache.sqlite")
    assert len(scripted.calls) - before == len(many) - ScriptedBackend.batch_size
    assert sum(p.cached for p in resumed) == ScriptedBackend.batch_size
    assert uncached(resumed) == reference


# ---- batching ------------------------------------------------------------------------------


def test_generation_batches_by_length_but_keeps_example_order(
    scripted: ScriptedBackend, home: Path
) -> None:
    scripted.rule = lambda messages: f"<{last_user(messages)}>"
    lengths = [9, 2, 30, 5, 17, 1, 25, 12, 3, 40, 7]
    items = examples([("w" * n, "ref") for n in lengths])
    predictions = run(scripted, TEXT, items, home / "cache.sqlite")

    assert [p.example_id for p in predictions] == [e.id for e in items]
    assert [p.output for p in predictions] == [f"<{e.input}>" for e in items]
    sent = [len(last_user(m)) for m in scripted.calls]
    assert sent == sorted(lengths)  # misses went to the model shortest first
    assert sent != lengths


def test_generation_only_sends_the_misses(scripted: ScriptedBackend, home: Path) -> None:
    scripted.rule = lambda messages: last_user(messages)[::-1]
    run(scripted, TEXT, TESTS[::2], home / "cache.sqlite")
    before = len(scripted.calls)
    predictions = run(scripted, TEXT, TESTS, home / "cache.sqlite")
    assert sorted(last_user(m) for m in scripted.calls[before:]) == sorted(
        e.input for e in TESTS[1::2]
    )
    assert [p.cached for p in predictions] == [i % 2 == 0 for i in range(len(TESTS))]
    assert [p.output for p in predictions] == [e.input[::-1] for e in TESTS]


def test_a_batched_answer_is_charged_its_share_of_the_batch(
    scripted: ScriptedBackend, home: Path
) -> None:
    rows = [(f"sentence {i}", "positive") for i in range(ScriptedBackend.batch_size)]
    text = contract(TEXT_FORMAT)
    found = run(scripted, text, examples(rows), home / "cache.sqlite")
    # The scripted backend reports 0.02 s for the whole call: the latency every answer waited.
    assert all(p.latency_ms == pytest.approx(20) for p in found)
    assert all(p.compute_ms == pytest.approx(20 / ScriptedBackend.batch_size) for p in found)
    again = run(scripted, text, examples(rows), home / "cache.sqlite")
    assert [p.compute_ms for p in again] == [p.compute_ms for p in found]  # kept in the cache
