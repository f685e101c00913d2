"""results.json read back through the one typed reader: a run written now, a run written by the
first version (fields it lacked take defaults), and malformed files (errors naming file and
field)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import ScriptedBackend, measure
from conftest import read_run as read_files

from tunewise.errors import TunewiseError
from tunewise.records.results import write_run
from tunewise.report import render_html, render_markdown
from tunewise.schemas.run_candidate import MetricRecord
from tunewise.schemas.run_file import RunRecord, read_run

# A results.json as the first release wrote it: no status, family, effort or trains per
# candidate, a cost block with only compute seconds, and none of the later run-level blocks.
FIRST_VERSION: dict[str, Any] = {
    "schema_version": 1,
    "run_id": "20261128-120000-tiny",
    "created_at": "2026-11-28T12:00:00+00:00",
    "code_version": "0.1.0",
    "task": {"name": "tiny", "hash": "t" * 64, "output_format": "label",
             "target": {"metric": "accuracy", "min": 0.6}, "usage": {}},
    "seed": 0,
    "data": {"hash": "d" * 64, "train_examples": 12, "test_examples": 6,
             "test_examples_available": 6, "test_source": "file", "leaked_test_inputs": 0,
             "limit": None},
    "machine": {"platform": "Linux", "cpus": 2, "python": "3.11.7"},
    "seconds": 1.5,
    "candidates": [{
        "name": "zero-shot", "strategy": "zero-shot", "model": "m", "model_fingerprint": "w",
        "params": {},
        "metrics": {"accuracy": {"value": 0.8333, "ci_low": 0.5, "ci_high": 1.0, "n": 6}},
        "usage": {"input_tokens_per_request": 44, "output_tokens_per_request": 2.0,
                  "latency_p50_ms": 10.0, "latency_p95_ms": 12.0},
        "setup": {"seconds": 0.0},
        "cost": {"compute_seconds_per_request": 0.01},
    }],
    "recommendation": {
        "candidate": "zero-shot", "step": 1, "verdict": "meets-target", "metric": "accuracy",
        "reasons": ["Prompting meets the target.", "It is the cheapest."],
        "gates": [{"step": 1, "question": "Does a prompting candidate meet the target?",
                   "passed": True, "detail": "target accuracy >= 0.6"}],
        "alternatives": [],
    },
}  # fmt: skip


@pytest.fixture
def run_dir(scripted: ScriptedBackend, tiny_task: Path, tmp_path: Path) -> Path:
    return write_run(measure(tiny_task), tmp_path / "runs")


def test_a_written_run_reads_back_typed_with_its_numbers(run_dir: Path) -> None:
    document, _ = read_files(run_dir)
    run = read_run(run_dir)
    assert run == read_run(run_dir / "results.json") == read_run(document)
    assert read_run(run) is run
    assert run.source == str(run_dir / "results.json")
    assert (run.run_id, run.task.name, run.data.hash) == (
        document["run_id"], document["task"]["name"], document["data"]["hash"],
    )  # fmt: skip
    assert [c.name for c in run.candidates] == [c["name"] for c in document["candidates"]]
    first, entry = run.candidates[0], document["candidates"][0]
    assert first.measured and first.family == entry["family"]
    assert first.metrics["accuracy"] == MetricRecord(**entry["metrics"]["accuracy"])
    assert first.usage.latency_p50_ms == entry["usage"]["latency_p50_ms"]
    assert (
        first.cost is not None
        and first.cost.compute_seconds_per_request == (entry["cost"]["compute_seconds_per_request"])
    )
    assert run.primary_metric() == "accuracy"


def test_the_decision_reads_back_with_its_evidence(run_dir: Path) -> None:
    run = read_run(run_dir)
    rec = run.recommendation
    assert rec is not None and rec.candidate is not None
    assert len(rec.evidence) == len(rec.reasons)
    [quoted] = rec.explained()[0][1]
    measured = run.measured()[0].metrics["accuracy"]
    assert quoted.candidate == rec.candidate
    assert (quoted.value, quoted.ci_low, quoted.ci_high, quoted.n) == (
        measured.value, measured.ci_low, measured.ci_high, measured.n,
    )  # fmt: skip
    assert quoted.target == 0.6
    assert {e.candidate for e in rec.gates[0].evidence} == {c.name for c in run.measured()}


def test_a_first_version_file_reads_with_defaults_and_renders() -> None:
    run = read_run(FIRST_VERSION)
    [c] = run.candidates
    assert c.status is None and c.measured  # older runs had only measured candidates
    assert (c.family, c.effort, c.trains) == (None, None, False)
    assert c.cost is not None and c.cost.per_request is None and c.cost.setup_seconds is None
    assert c.usage.estimated_token_counts is None and c.consistency is None
    assert run.ladder is None and run.learning_curve is None and run.break_even == ()
    assert run.task.usage.horizon_months is None and run.checks is None
    rec = run.recommendation
    assert rec is not None and rec.evidence == ()
    assert rec.explained() == [(reason, ()) for reason in rec.reasons]
    assert rec.gates[0].evidence == ()
    markdown = render_markdown(run, [])
    assert "| compute s / request | 0.01 s |" in markdown
    assert "USD / request" not in markdown and "Prompting meets the target." in markdown
    assert "zero-shot" in render_html(FIRST_VERSION, [])


def test_the_ladders_plan_reads_back_and_the_report_sets_estimates_beside_actuals() -> None:
    document = copy.deepcopy(FIRST_VERSION)
    step = {"step": 1, "title": "prompting", "status": "run", "seconds": 30.0}
    planned = {"step": 1, "title": "prompting", "runs": "zero-shot and few-shot",
               "smallest_seconds": 12.0, "full_seconds": 150.0, "stops_if": "...",
               "estimated_seconds": 24.0, "actual_seconds": 31.5}  # fmt: skip
    document["ladder"] = {"budget_seconds": 420.0, "steps": [step], "reductions": [],
                          "stopped": None, "seconds": 30.0, "compute_seconds": 31.5,
                          "plan": {"timing": {}, "steps": [planned]}}  # fmt: skip
    run = read_run(document)
    assert run.ladder is not None and run.ladder.plan is not None
    [row] = run.ladder.plan.steps
    assert (row.estimated_seconds, row.actual_seconds) == (24.0, 31.5)
    markdown = render_markdown(run, [])
    assert "step 1 prompting 24.0 s estimated, 31.5 s measured" in markdown


def test_a_minimal_file_reads_and_nulls_where_none_is_allowed_take_the_default() -> None:
    minimal = {"run_id": "r", "candidates": [{"name": "c"}], "break_even": None}
    run = read_run(minimal)
    assert run.break_even == () and run.recommendation is None and run.task.target is None
    assert run.candidates[0].metrics == {} and not run.candidates[0].measured
    assert isinstance(run, RunRecord) and run.primary_metric() is None


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d["candidates"][0]["metrics"]["accuracy"].update(value="high"),
         "candidates[0].metrics.accuracy.value: expected a number, got 'high'"),
        (lambda d: d["candidates"][0]["metrics"]["accuracy"].pop("n"),
         "candidates[0].metrics.accuracy.n: missing"),
        (lambda d: d["candidates"][0].pop("name"), "candidates[0].name: missing"),
        (lambda d: d["candidates"][0]["usage"].update(latency_p50_ms=True),
         "candidates[0].usage.latency_p50_ms: expected a number, got True"),
        (lambda d: d["recommendation"].update(reasons="one"),
         "recommendation.reasons: expected a list, got 'one'"),
        (lambda d: d["task"].update(target=[0.6]), "task.target: expected an object"),
        (lambda d: d.update(seed="0"), "seed: expected an integer, got '0'"),
    ],
)  # fmt: skip
def test_a_malformed_field_is_an_error_naming_the_file_and_field(
    change: Any, where: str, tmp_path: Path
) -> None:
    document = copy.deepcopy(FIRST_VERSION)
    change(document)
    path = tmp_path / "run" / "results.json"
    path.parent.mkdir()
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(TunewiseError) as raised:
        read_run(path.parent)
    assert str(raised.value).startswith(f"{path}: {where}")


def test_a_missing_or_unparsable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TunewiseError, match=r"results\.json: no such file"):
        read_run(tmp_path / "nowhere")
    (tmp_path / "results.json").write_text("{\n  oops", encoding="utf-8")
    with pytest.raises(TunewiseError, match=r"results\.json:2: not valid JSON"):
        read_run(tmp_path)
    (tmp_path / "results.json").write_text("[]", encoding="utf-8")
    with pytest.raises(TunewiseError, match="expected a JSON object"):
        read_run(tmp_path)
