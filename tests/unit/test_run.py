"""run_task + write_run: artifacts that match their schemas, options, leakage, atomic writes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import (
    SENTIMENT_TEST,
    SENTIMENT_TRAIN,
    ScriptedBackend,
    measure,
    read_run,
    write_jsonl,
)

import tunewise.records.results as results_module
from tunewise.errors import DataError, TunewiseError
from tunewise.records.results import load_schema, write_run
from tunewise.run import RunResult


@pytest.fixture
def written(scripted: ScriptedBackend, tiny_task: Path, tmp_path: Path) -> Path:
    return write_run(measure(tiny_task), tmp_path / "runs")


def test_artifacts_validate_against_their_schemas(written: Path) -> None:
    document, predictions = read_run(written)
    jsonschema.Draft202012Validator(load_schema("results")).validate(document)
    line_schema = jsonschema.Draft202012Validator(load_schema("prediction"))
    for line in predictions:
        line_schema.validate(line)
    assert document["run_id"] == written.name
    names = sorted(p.name for p in written.iterdir())
    assert names == ["predictions.jsonl", "report.html", "report.md", "results.json", "task.json"]


def test_every_candidate_answers_every_test_example(written: Path) -> None:
    document, predictions = read_run(written)
    names = [c["name"] for c in document["candidates"]]
    assert names == ["zero-shot", "few-shot"]
    assert len(predictions) == len(names) * len(SENTIMENT_TEST)
    pairs = {(p["candidate"], p["example_id"]) for p in predictions}
    assert pairs == {(n, f"test-{i}") for n in names for i in range(len(SENTIMENT_TEST))}
    assert document["data"]["test_examples"] == len(SENTIMENT_TEST)
    assert document["data"]["train_examples"] == len(SENTIMENT_TRAIN)
    few = [p for p in predictions if p["candidate"] == "few-shot"]
    assert all(len(p["demo_ids"]) == 8 for p in few)
    assert all(p["demo_ids"] == [] for p in predictions if p["candidate"] == "zero-shot")


def test_metrics_carry_value_ci_and_n(written: Path) -> None:
    document, predictions = read_run(written)
    for candidate in document["candidates"]:
        assert set(candidate["metrics"]) >= {"accuracy", "macro_f1", "format_validity"}
        for metric in candidate["metrics"].values():
            assert set(metric) == {"value", "ci_low", "ci_high", "n"}
            assert metric["n"] == len(SENTIMENT_TEST)
            assert metric["ci_low"] <= metric["value"] <= metric["ci_high"]
        # The accuracy is the mean of the per-example scores written alongside it.
        correct = [
            p["scores"]["correct"] for p in predictions if p["candidate"] == candidate["name"]
        ]
        assert candidate["metrics"]["accuracy"]["value"] == pytest.approx(
            sum(correct) / len(correct), abs=1e-4
        )


def test_recommendation_agrees_with_the_metrics(written: Path) -> None:
    document, _ = read_run(written)
    recommendation = document["recommendation"]
    target = document["task"]["target"]
    metric = recommendation["metric"]
    assert metric == target["metric"] == "accuracy"
    assert recommendation["verdict"] == "meets-target"

    def tokens(c: dict[str, Any]) -> float:
        return c["usage"]["input_tokens_per_request"] + c["usage"]["output_tokens_per_request"]

    by_name = {c["name"]: c for c in document["candidates"]}
    chosen = by_name[recommendation["candidate"]]
    assert chosen["metrics"][metric]["value"] >= target["min"]
    meeting = [c for c in by_name.values() if c["metrics"][metric]["value"] >= target["min"]]
    assert tokens(chosen) == min(tokens(c) for c in meeting)
    assert len(meeting) == 2 and tokens(by_name["few-shot"]) > tokens(by_name["zero-shot"])
    assert recommendation["gates"][0]["passed"] is True


def test_strategies_option_runs_only_those(scripted: ScriptedBackend, tiny_task: Path) -> None:
    result = measure(tiny_task, strategies=("few-shot",))
    assert [c.name for c in result.candidates] == ["few-shot"]
    # The test set once, then twice more with re-drawn demos for the consistency measure.
    assert len(scripted.calls) == 3 * len(SENTIMENT_TEST)
    assert all(len(call) > 2 for call in scripted.calls)  # demos were sent


def test_unknown_strategy_names_the_allowed_ones(
    scripted: ScriptedBackend, tiny_task: Path
) -> None:
    with pytest.raises(TunewiseError, match="bogus") as caught:
        measure(tiny_task, strategies=("zero-shot", "bogus"))
    assert "zero-shot" in str(caught.value) and "few-shot" in str(caught.value)
    assert scripted.calls == []


def test_limit_evaluates_that_many(
    scripted: ScriptedBackend, tiny_task: Path, tmp_path: Path
) -> None:
    result = measure(tiny_task, limit=3)
    assert len(result.test) == 3
    document, predictions = read_run(write_run(result, tmp_path / "runs"))
    assert document["data"]["test_examples"] == 3
    assert document["data"]["test_examples_available"] == len(SENTIMENT_TEST)
    assert document["data"]["limit"] == 3
    assert len(predictions) == 2 * 3
    assert all(m["n"] == 3 for c in document["candidates"] for m in c["metrics"].values())
    assert len(scripted.calls) == 2 * 3 + 2 * 3  # and two demo re-draws of few-shot


def test_the_tasks_test_sample_is_the_default_limit(
    scripted: ScriptedBackend, tiny_task: Path, tmp_path: Path
) -> None:
    text = tiny_task.read_text(encoding="utf-8")
    tiny_task.write_text(
        text.replace("  test: data/test.jsonl\n", "  test: data/test.jsonl\n  test_sample: 4\n"),
        encoding="utf-8",
    )
    sampled = measure(tiny_task, strategies=("zero-shot",))
    assert len(sampled.test) == 4
    document, _ = read_run(write_run(sampled, tmp_path / "runs"))
    assert document["data"]["limit"] == 4
    assert document["data"]["test_examples_available"] == len(SENTIMENT_TEST)
    # The same seeded sample as --limit 4; --limit overrides the task, and all evaluates all.
    by_option = measure(tiny_task, strategies=("zero-shot",), limit=4)
    assert [e.id for e in by_option.test] == [e.id for e in sampled.test]
    assert len(measure(tiny_task, strategies=("zero-shot",), limit=2).test) == 2
    whole = measure(tiny_task, strategies=("zero-shot",), limit="all")
    assert len(whole.test) == len(SENTIMENT_TEST)
    document, _ = read_run(write_run(whole, tmp_path / "runs"))
    assert document["data"]["limit"] is None


@pytest.fixture
def leaky_task(tiny_task: Path) -> Path:
    rows = [*SENTIMENT_TEST, (SENTIMENT_TRAIN[0][0], SENTIMENT_TRAIN[0][1])]
    write_jsonl(tiny_task.parent / "data" / "test.jsonl", rows)
    return tiny_task


def test_leaked_test_inputs_are_counted(
    scripted: ScriptedBackend, leaky_task: Path, tmp_path: Path
) -> None:
    document, _ = read_run(write_run(measure(leaky_task), tmp_path / "runs"))
    assert document["data"]["leaked_test_inputs"] == 1


def test_leaked_test_inputs_fail_a_strict_run(scripted: ScriptedBackend, leaky_task: Path) -> None:
    with pytest.raises(DataError, match="1 test inputs also appear in train"):
        measure(leaky_task, strict=True)
    assert scripted.calls == []


def test_a_clean_strict_run_succeeds(scripted: ScriptedBackend, tiny_task: Path) -> None:
    assert measure(tiny_task, strict=True).dataset.leaked == []


def test_write_run_is_all_or_nothing(
    scripted: ScriptedBackend, tiny_task: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = measure(tiny_task)
    real = results_module.prediction_lines

    def failing(run: RunResult) -> Iterator[dict[str, Any]]:
        lines = real(run)
        yield from lines[:3]
        raise RuntimeError("disk full")

    monkeypatch.setattr(results_module, "prediction_lines", failing)
    out = tmp_path / "runs"
    with pytest.raises(RuntimeError, match="disk full"):
        write_run(result, out)
    assert list(out.iterdir()) == []  # no run folder, no hidden staging folder


def test_runs_in_the_same_second_get_distinct_ids(
    scripted: ScriptedBackend, tiny_task: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return frozen

    monkeypatch.setattr(results_module, "datetime", FrozenDatetime)
    result = measure(tiny_task)
    out = tmp_path / "runs"
    folders = [write_run(result, out) for _ in range(3)]
    assert len({f.name for f in folders}) == 3
    assert all(f.name.startswith("20250102-030405-tiny-sentiment") for f in folders)
    for folder in folders:
        document, _ = read_run(folder)
        assert document["run_id"] == folder.name
    assert sorted(p.name for p in out.iterdir()) == sorted(f.name for f in folders)


def test_few_shot_consistency_over_seeded_demo_redraws(
    scripted: ScriptedBackend, tiny_task: Path, tmp_path: Path
) -> None:
    result = measure(tiny_task, strategies=("few-shot",))
    (few,) = result.candidates
    assert few.consistency is not None
    demo_sets = {tuple(m["content"] for m in call[1:-1]) for call in scripted.calls}
    assert len(demo_sets) == 3  # three different seeded draws of the demos
    document, _ = read_run(write_run(result, tmp_path / "runs"))
    consistency = document["candidates"][0]["consistency"]
    assert consistency["redraws"] == 3 and consistency["examples"] == len(SENTIMENT_TEST)
    assert consistency["draws"][0] == document["candidates"][0]["metrics"]["accuracy"]["value"]
    # The scripted rule ignores the demos, so every draw answers alike.
    assert consistency["agreement"]["value"] == 1.0 and consistency["spread"]["std"] == 0.0


def test_agreement_counts_examples_answered_alike_by_every_draw() -> None:
    from tunewise.measuring.consistency import agreement

    draws = [["a", "b", "c"], ["a", "b ", "x"], ["a", "c", "c"]]
    assert agreement(draws).tolist() == [1.0, 0.0, 0.0]


def test_task_json_round_trips_with_fine_tuning_candidates(
    scripted: ScriptedBackend, tiny_task: Path, tmp_path: Path
) -> None:
    """task.json keeps what the task file set, so serve rebuilds the same task: settings that
    only count when given (distillation's, hybrid's max_length) stay unset."""
    import json

    from pydantic import TypeAdapter

    from tunewise.core.specs import CandidateSpec
    from tunewise.task.config import Task

    text = tiny_task.read_text(encoding="utf-8")
    text += "candidates:\n  - {strategy: zero-shot}\n  - {strategy: lora, opt_in: true}\n"
    tiny_task.write_text(text, encoding="utf-8")
    folder = write_run(measure(tiny_task), tmp_path / "runs")
    saved = json.loads((folder / "task.json").read_text(encoding="utf-8"))
    task = Task.model_validate(saved["task"])
    assert task.candidates[1].model_fields_set == {"strategy", "opt_in"}
    spec = TypeAdapter(CandidateSpec).validate_python(saved["candidates"]["zero-shot"]["spec"])
    assert spec.model_fields_set == {"strategy"}


def test_a_run_whose_every_candidate_was_skipped_names_each_reason(tiny_task: Path) -> None:
    from tunewise.core.setup import Setup
    from tunewise.deciding.from_results import decide_from
    from tunewise.measuring.candidate import CandidateResult
    from tunewise.task.data import Dataset
    from tunewise.task.loading import load_task

    failed = CandidateResult(
        "hosted", "hosted-fine-tuning", "m", "f", {}, {}, {}, Setup(), [],
        skipped="job ftjob-1 failed: invalid training file",
    )  # fmt: skip
    dataset = Dataset([], [], "file", [])
    with pytest.raises(TunewiseError, match=r"nothing to decide \(hosted: job ftjob-1 failed"):
        decide_from(load_task(tiny_task), dataset, [failed])
