"""Which candidates a run measures, and the learning-curve orchestration (model-free)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tunewise.core.setup import Setup, Training
from tunewise.errors import TunewiseError
from tunewise.evaluation import MetricValue
from tunewise.measuring.candidate import CandidateResult
from tunewise.measuring.curve import learning_curve
from tunewise.measuring.selection import candidate_specs, pinned
from tunewise.models.local import LocalModel
from tunewise.models.registry import register_backend, unregister_backend
from tunewise.records.results import load_schema, write_run
from tunewise.run import RunOptions, run_task
from tunewise.strategies.lora import LoraCandidate
from tunewise.task.config import Task
from tunewise.task.loading import load_task

LADDER = """candidates:
  - {strategy: zero-shot}
  - {strategy: few-shot, k: 4}
  - {strategy: lora, epochs: 1, opt_in: true}
"""


@pytest.fixture
def ladder_task(tiny_task: Path) -> Task:
    tiny_task.write_text(tiny_task.read_text() + LADDER)
    return load_task(tiny_task)


def test_opt_in_candidates_run_only_when_asked(ladder_task: Task) -> None:
    default = candidate_specs(ladder_task, RunOptions())
    assert [s.strategy for s in default] == ["zero-shot", "few-shot"]  # pinned: no lora
    assert pinned(ladder_task, RunOptions())
    asked = candidate_specs(ladder_task, RunOptions(strategies=("few-shot", "lora")))
    assert [s.strategy for s in asked] == ["few-shot", "lora"]
    assert asked[1].epochs == 1  # the task's own lora settings, not the defaults


def test_a_wanted_strategy_the_task_does_not_list_gets_its_defaults(tiny_task: Path) -> None:
    task = load_task(tiny_task)
    (spec,) = candidate_specs(task, RunOptions(strategies=("lora",)))
    assert isinstance(spec, LoraCandidate) and spec.epochs == 2 and spec.r == 16


def result(name: str, value: float, train: int = 90, validation: int = 10) -> CandidateResult:
    metric = MetricValue(value, value - 0.05, value + 0.05, 100)
    return CandidateResult(
        name,
        "lora",
        "m",
        "f",
        {"train_examples": train},
        {"accuracy": metric},
        {},
        Setup(training=Training(validation_examples=validation)),
        [],
    )


def test_learning_curve_trains_each_clipped_size_once(ladder_task: Task) -> None:
    specs = candidate_specs(ladder_task, RunOptions(strategies=("zero-shot", "lora")))
    full = result("lora", 0.80)
    measured: list[tuple[int | None, str]] = []

    def measure(spec: LoraCandidate, name: str) -> CandidateResult:  # type: ignore[override]
        measured.append((spec.max_train_examples, name))
        size = spec.max_train_examples or 100
        return result(name, 0.85 - 3.0 / size**0.5)

    zero = result("zero-shot", 0.5)
    fit = learning_curve(ladder_task, specs, [zero, full], (5, 25, 50, 100, 400), measure)
    # 5 is raised to the smallest allowed subset (10); 100 and 400 are the full set (100).
    assert measured == [(10, "lora@10"), (25, "lora@25"), (50, "lora@50")]
    assert [p.examples for p in fit.points] == [10, 25, 50, 100]
    assert fit.target == pytest.approx(0.6) and fit.reachable == "reached"


def test_learning_curve_needs_a_lora_candidate(ladder_task: Task) -> None:
    specs = candidate_specs(ladder_task, RunOptions(strategies=("zero-shot",)))
    with pytest.raises(TunewiseError, match="lora"):
        learning_curve(ladder_task, specs, [result("zero-shot", 0.5)], (10,), lambda s, n: None)


def test_qlora_without_cuda_is_recorded_as_skipped(
    tiny_task: Path, scripted: object, tmp_path: Path
) -> None:
    tiny_task.write_text(
        tiny_task.read_text()
        + "candidates:\n  - {strategy: zero-shot}\n  - {strategy: qlora, model: 'local:x'}\n"
    )
    register_backend("local", lambda rest: LocalModel("local:x", tmp_path / "none", tmp_path))
    try:
        run = run_task(load_task(tiny_task), RunOptions())
    finally:
        unregister_backend("local")
    zero, qlora = run.candidates
    assert zero.measured and not qlora.measured and "CUDA" in (qlora.skipped or "")
    folder = write_run(run, tmp_path / "runs")
    document = json.loads((folder / "results.json").read_text())
    jsonschema.validate(document, load_schema("results"))
    assert document["candidates"][1] == {
        "name": "qlora",
        "strategy": "qlora",
        "family": "fine-tuning",
        "trains": True,
        "effort": "High",
        "model": "local:x",
        "status": "skipped",
        "skipped_reason": qlora.skipped,
    }
    assert document["recommendation"]["candidate"] == "zero-shot"
    lines = (folder / "predictions.jsonl").read_text().splitlines()
    assert {json.loads(line)["candidate"] for line in lines} == {"zero-shot"}


def test_the_answer_budget_follows_the_longest_training_answer() -> None:
    from tunewise.run import with_answer_budget
    from tunewise.task.config import Task
    from tunewise.task.data import Example

    task = Task.model_validate(
        {
            "name": "qa",
            "contract": {
                "objective": "Answer.",
                "audience": "Editors.",
                "source_material": "Articles.",
                "output_format": {"type": "text"},
            },
            "data": {"train": "train.jsonl"},
        }
    )

    def examples(*outputs: str) -> list[Example]:
        return [Example(str(i), "q", o, "train.jsonl:1") for i, o in enumerate(outputs)]

    assert with_answer_budget(task, examples("Oslo", "42")).max_new_tokens == 32  # the floor
    assert with_answer_budget(task, examples("x" * 90)).max_new_tokens == 60  # 2 x 90 / 3
    assert with_answer_budget(task, examples("x" * 9000)).max_new_tokens == 512  # the ceiling
    own = task.model_copy(update={"max_new_tokens": 7})
    assert with_answer_budget(own, examples("x" * 90)).max_new_tokens == 7
