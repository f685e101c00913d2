"""Which candidates a run measures, and the learning-curve orchestration (model-free)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunewise.errors import TunewiseError
from tunewise.evaluation import MetricValue
from tunewise.run import CandidateResult, RunOptions, candidate_specs, learning_curve
from tunewise.task import LoraCandidate, Task, load_task

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
    assert [s.strategy for s in default] == ["zero-shot", "few-shot"]
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
        {"training": {"validation_examples": validation}},
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
