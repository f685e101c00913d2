"""The ladder within its budget on a simulated world (simulated_ladder.py): sequential rounds,
what is cut and recorded, what a step that cannot fit says, and forecasts from small trainings."""

from __future__ import annotations

from pathlib import Path

import pytest
from simulated_ladder import READER_QUALITY, World, climb, qa_task, statuses, with_documents

from tunewise.core.budget import parse_budget
from tunewise.deciding.ladder import min_test_examples
from tunewise.deciding.next_step import next_step
from tunewise.deciding.plan import FIXED_SECONDS
from tunewise.errors import TunewiseError
from tunewise.measuring.selection import suggested_command
from tunewise.measuring.timing import Timing
from tunewise.run import RunOptions
from tunewise.task.config import Task
from tunewise.task.loading import load_task


@pytest.fixture
def task(tiny_task: Path) -> Task:
    return load_task(tiny_task)  # target accuracy >= 0.6


def test_rag_whose_timing_alone_would_overrun_the_budget_is_not_started(
    task: Task, tmp_path: Path
) -> None:
    # Passages of 8,000 tokens at 10 ms a token: timing 8 RAG answers needs about 640 s, more
    # than the 100 s the prompting steps leave of 120 s. Nothing of RAG is asked.
    world = World({"zero-shot": 0.3, "few-shot": 0.4, "rag": 0.8}, per_answer={"few-shot": 0.2})
    timing = Timing(0.01, 50.0, 300.0, 8000.0, None, 1000, 100)
    _, record = climb(with_documents(task, tmp_path), world, budget=120.0, test=100,
                      trainable=False, timing=timing)  # fmt: skip
    step2 = next(s for s in record.steps if s.step == 2)
    assert step2.status == "not run: budget" and "about 640 s" in step2.reason
    assert step2.command == "tunewise run task.yaml --strategies zero-shot,few-shot,rag"
    assert not [name for name, *_ in world.asked if name.startswith("rag")]


def test_answers_measured_at_once_still_keep_to_the_budget(task: Task) -> None:
    # Answers not scored one by one (the World's answers are not drawn): each candidate answers
    # the whole sample at once. The plan: zero-shot 0.1 s an answer, few-shot 0.4 s.
    world = World({"zero-shot": 0.3, "few-shot": 0.4}, per_answer={"few-shot": 0.4})
    timing = Timing(0.001, 100.0, 400.0, None, None, 1000, 100)
    # 70 s: few-shot's 97 answers (39 s) fit after zero-shot's 10 s; its 2 x 60 re-drawn
    # answers (48 s more) do not, so it is measured on one draw and the cut is recorded.
    ladder, record = climb(task, world, budget=70.0, test=100, trainable=False, timing=timing)
    assert len(ladder.test) == 97  # the smallest sample: 97 answers of each take over half
    cuts = {(r.setting, r.candidate): (r.before, r.after) for r in record.reductions}
    assert cuts[("redraws", "few-shot")] == (3, 1)
    assert [n for name, n, *_ in world.asked if name == "few-shot"] == [97]
    # 35 s: not even few-shot's first answers fit what zero-shot leaves.
    world = World({"zero-shot": 0.3, "few-shot": 0.4}, per_answer={"few-shot": 0.4})
    _, record = climb(task, world, budget=35.0, test=100, trainable=False, timing=timing)
    step = next(s for s in record.steps if s.title == "few-shot")
    assert step.status == "not run: budget" and "first 97 answers need about 39 s" in step.reason
    assert step.command == "tunewise run task.yaml --strategies zero-shot,few-shot"
    assert "few-shot" not in [name for name, *_ in world.asked]


def test_lora_that_cannot_fit_is_not_run_with_its_exact_command(task: Task) -> None:
    answers = {"zero-shot": 0.1, "few-shot": 0.1}
    world = World({"zero-shot": 0.3, "few-shot": 0.4, "lora": 0.9}, answers, train_per_example=5.0)
    ladder, record = climb(task, world, budget=120, test=100)
    assert "lora" not in [r.name for r in ladder.results]
    step3 = next(s for s in record.steps if s.step == 3)
    assert step3.status == "not run: budget"
    assert step3.command == "tunewise run task.yaml --strategies zero-shot,few-shot,lora"
    assert step3.estimated_seconds is not None and step3.estimated_seconds > 120
    # The smallest useful training is quoted beside the full one the command runs.
    assert "at its smallest useful size (100 x 1)" in step3.reason
    assert "for all 1000 examples x 2 epochs" in step3.reason
    recommendation = ladder.decision()
    following = next_step(
        recommendation, record, None, measured={}, target=task.target, train_examples=1000,
        command=lambda s, **flags: suggested_command(RunOptions(), s, **flags), model="m",
    )  # fmt: skip
    assert following.command == step3.command and "did not fit the budget" in following.action


def test_the_budget_shrinks_test_and_training_and_records_each_cut(task: Task) -> None:
    world = World({"zero-shot": 0.3, "few-shot": 0.4, "lora": 0.9},
                  per_answer={"zero-shot": 0.5, "few-shot": 0.5, "lora": 0.5})  # fmt: skip
    ladder, record = climb(task, world, budget=600, train=1500, test=300)
    cuts = {(r.setting, r.candidate): (r.before, r.after) for r in record.reductions}
    before, after = cuts[("test_examples", "all")]
    assert before == 300 and min_test_examples() <= after < 300
    assert len(ladder.test) == after
    assert cuts[("epochs", "lora")] == (2, 1)
    trained_before, trained = cuts[("max_train_examples", "lora")]
    assert trained_before == 1500 and 100 <= trained < 1500
    lora = next(a for a in world.asked if a[0] == "lora")
    assert lora == ("lora", after, trained, 1)  # what ran is what was recorded
    assert world.now <= 600 * 1.1  # the estimates hold on this world
    assert all(n == after for name, n, _, _ in world.asked if "warm" not in name and n > 8)


def test_no_budget_runs_every_step_in_full(task: Task) -> None:
    world = World({"zero-shot": 0.3, "few-shot": 0.4, "lora": 0.5})
    _, record = climb(task, world, budget=None)
    assert record.reductions == []
    lora = next(a for a in world.asked if a[0] == "lora")
    assert lora == ("lora", 300, 1000, 2)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15m", 900.0), ("90s", 90.0), ("90", 90.0), ("1h30m", 5400.0), ("none", None)],
)
def test_budgets_parse(text: str, seconds: float | None) -> None:
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0m", "5x"])
def test_bad_budgets_name_the_flag(text: str) -> None:
    with pytest.raises(TunewiseError, match="--budget"):
        parse_budget(text)


def test_a_subsampled_lora_without_room_for_two_trainings_forecasts_from_its_warm_up(
    task: Task,
) -> None:
    world = World({"zero-shot": 0.3, "few-shot": 0.4, "lora": 0.5},
                  per_answer={"zero-shot": 0.5, "few-shot": 0.5, "lora": 0.5})  # fmt: skip
    ladder, record = climb(task, world, budget=600, train=1500, test=300)
    recommendation = ladder.decision()
    measured = {r.name: (r.strategy, r.metrics["accuracy"]) for r in ladder.results}
    following = next_step(
        recommendation, record, None, measured=measured, target=task.target,
        train_examples=1500,
        command=lambda s, **flags: suggested_command(RunOptions(), s, **flags), model="m",
    )  # fmt: skip
    assert recommendation.closest == "lora" and recommendation.closest_step == 3
    # No room for two smaller trainings: the warm-up adapter (40 examples, the same settings)
    # answers as the curve's second size, and the curve forecasts all 1,500.
    trained = [t for name, _, t, _ in world.asked if name.startswith("lora@")]
    assert trained == [40]
    assert record.forecast is not None and record.forecast.forecast.examples == 1500
    assert "learning curve forecasts" in following.action and "at 1,500 examples" in (
        following.action
    )
    assert following.command == "tunewise run task.yaml --strategies zero-shot,few-shot,lora"


def test_a_large_task_prompting_cannot_reach_measures_lora_and_says_what_next(task: Task) -> None:
    # 2,000 labelled examples, target 0.9, 100 test examples (--limit 100), default budget.
    hard = task.model_copy(update={"target": task.target.model_copy(update={"min": 0.9})})  # type: ignore[union-attr]
    world = World({"zero-shot": 0.4, "few-shot": 0.5, "lora": 0.8},
                  per_answer={"zero-shot": 0.3, "few-shot": 0.35, "lora": 0.3})  # fmt: skip
    ladder, record = climb(hard, world, budget=parse_budget("7m"), train=2000, test=100)
    assert "lora" in [r.name for r in ladder.results]
    recommendation = ladder.decision()
    assert recommendation.closest == "lora" and recommendation.closest_step == 3
    assert len(recommendation.reasons) >= 2
    measured = {r.name: (r.strategy, r.metrics["accuracy"]) for r in ladder.results}
    following = next_step(
        recommendation, record, None, measured=measured, target=hard.target,
        train_examples=2000,
        command=lambda s, **flags: suggested_command(RunOptions(limit=100), s, **flags),
        model="m",
    )  # fmt: skip
    assert following.command is not None and following.command.startswith("tunewise run")
    assert "learning curve forecasts" in following.action
    assert record.forecast is not None and record.forecast.seconds > 0


def test_sequential_rounds_stop_far_candidates_early_and_keep_the_budget_for_step_3(
    task: Task,
) -> None:
    # Prompting far below the 0.6 target is settled after the first 24 answers, without demo
    # re-draws; LoRA, near the target, answers more before its interval clears it.
    world = World({"zero-shot": 0.1, "few-shot": 0.15, "lora": 0.95}, drawn=True)
    ladder, _ = climb(task, world, budget=4000, train=600, test=300)
    stops = {r.name: r.sequential for r in ladder.results}
    assert stops["zero-shot"] is not None and stops["few-shot"] is not None
    assert (stops["zero-shot"].n, stops["zero-shot"].reason) == (24, "below the target")
    assert (stops["few-shot"].n, stops["few-shot"].reason) == (24, "below the target")
    assert getattr(ladder.specs[1], "redraws", None) == 1  # far below: no re-draws
    lora = stops["lora"]
    assert lora is not None and lora.reason == "above the target" and lora.looks == 5
    interval = ladder.results[-1].metrics["accuracy"]
    assert interval.n == lora.n and interval.ci_low >= 0.6 and lora.confidence == 0.99
    # Only the answers asked were charged: 24 + 24 + LoRA's, not 300 each.
    assert [n for name, n, *_ in world.asked if name in {"zero-shot", "few-shot"}][-2:] == [24, 24]


def test_a_candidate_whose_next_round_does_not_fit_stops_with_a_valid_interval(
    task: Task,
) -> None:
    # LoRA sits on the target, so no round settles it, and its answers cost five times the
    # baseline's: its training leaves room for two rounds, and the ladder stops it there
    # instead of overrunning the budget.
    world = World({"zero-shot": 0.1, "few-shot": 0.15, "lora": 0.6}, drawn=True,
                  per_answer={"zero-shot": 0.2, "few-shot": 0.2, "lora": 1.0})  # fmt: skip
    ladder, record = climb(task, world, budget=1080, train=1000, test=300)
    lora = next(r for r in ladder.results if r.name == "lora")
    assert lora.sequential is not None and lora.sequential.reason == "budget spent"
    assert lora.sequential.n < lora.sequential.planned
    interval = lora.metrics["accuracy"]
    assert interval.n == lora.sequential.n and interval.ci_low < 0.6 < interval.ci_high
    assert record.compute_seconds <= 1080


def test_far_below_the_target_a_costly_few_shot_gives_way_to_step_3(task: Task) -> None:
    # Long inputs: each few-shot answer costs 40x a zero-shot one. Zero-shot is clear below the
    # target after 24 answers; 48 few-shot answers (about 192 s) would leave too little of 250 s
    # for 140 training examples and their answers, so step 3 comes first.
    world = World({"zero-shot": 0.1, "few-shot": 0.2, "lora": 0.5}, drawn=True,
                  per_answer={"zero-shot": 0.1, "few-shot": 4.0, "lora": 0.1})  # fmt: skip
    timing = Timing(0.001, 100.0, 4000.0, None, 0.5, 1000, 300)
    ladder, record = climb(task, world, budget=250, train=1000, test=300, timing=timing)
    assert "few-shot" not in [r.name for r in ladder.results]
    step = next(s for s in record.steps if s.title == "few-shot")
    assert step.status == "not run: budget" and "step 3 first" in step.reason
    assert step.command == "tunewise run task.yaml --strategies zero-shot,few-shot"
    assert statuses(record)[3] == "run" and ladder.results[-1].strategy == "lora"
    # With room for both, few-shot is measured as usual.
    ladder, _ = climb(task, world, budget=400, train=1000, test=300, timing=timing)
    assert "few-shot" in [r.name for r in ladder.results]


def test_long_inputs_on_a_small_cpu_still_train_lora_and_forecast_within_the_budget(
    task: Task,
) -> None:
    # 2,089 long training texts, 3.4 s per training example, 0.8 s per zero-shot answer and a
    # 7-minute budget: the warm-up shrinks to 16 examples, few-shot gives way, LoRA trains on a
    # subsample and the warm-up adapter is the curve's second size.
    hard = task.model_copy(update={"target": task.target.model_copy(update={"min": 0.9})})  # type: ignore[union-attr]
    world = World({"zero-shot": 0.2, "few-shot": 0.25, "lora": 0.5}, drawn=True,
                  per_answer={"zero-shot": 0.8, "few-shot": 6.0, "lora": 0.8},
                  train_per_example=3.4)  # fmt: skip
    timing = Timing(0.0024, 331.0, 2681.0, None, 3.4, 2089, 100, warm_up_examples=16)
    ladder, record = climb(hard, world, budget=420, train=2089, test=100, timing=timing)
    assert [r.name for r in ladder.results] == ["zero-shot", "lora"]
    cut = next(r for r in record.reductions if r.setting == "max_train_examples")
    assert 3 * 16 <= cut.after < 2089
    assert [t for name, _, t, _ in world.asked if name.startswith("lora@")] == [16]
    forecast = record.forecast
    assert forecast is not None and forecast.forecast.examples == 2089
    assert forecast.forecast.low <= forecast.forecast.value <= forecast.forecast.high
    assert record.compute_seconds <= 420 * 1.05


def test_few_shot_close_to_the_target_gets_its_demo_redraws(task: Task) -> None:
    world = World({"zero-shot": 0.1, "few-shot": 0.6, "lora": 0.62}, drawn=True)
    ladder, _ = climb(task, world, train=600, test=300)
    few = next(r for r in ladder.results if r.name == "few-shot")
    assert few.sequential is not None and few.sequential.reason != "below the target"
    assert getattr(ladder.specs[1], "redraws", None) == 3  # measured again with its re-draws
    assert few.metrics["accuracy"].n == few.sequential.n


def test_a_subsampled_lora_gets_a_curve_and_a_forecast_at_full_size(task: Task) -> None:
    # 2,000 training examples do not fit: LoRA trains on what leaves room for a half and a
    # quarter of it, the curve through the three points forecasts all 2,000, and the next step
    # says so with the time full training takes here.
    world = World({"zero-shot": 0.1, "few-shot": 0.15, "lora": 0.5}, drawn=True)
    ladder, record = climb(task, world, budget=1800, train=2000, test=300)
    forecast = record.forecast
    assert forecast is not None and forecast.candidate == "lora"
    cut = next(r for r in record.reductions if r.setting == "max_train_examples")
    assert forecast.trained == cut.after < 2000 and forecast.forecast.examples == 2000
    trained = [t for name, _, t, _ in world.asked if name.startswith("lora@")]
    assert trained == [cut.after // 4, cut.after // 2]
    assert ladder.curve is not None and len(ladder.curve.points) == 3
    assert forecast.seconds > 1800 - record.compute_seconds  # it did not fit
    assert record.compute_seconds <= 1800 * 1.05
    recommendation = ladder.decision()
    measured = {r.name: (r.strategy, r.metrics["accuracy"]) for r in ladder.results}
    following = next_step(
        recommendation, record, ladder.curve, measured=measured, target=task.target,
        train_examples=2000,
        command=lambda s, **flags: suggested_command(RunOptions(), s, **flags), model="m",
    )  # fmt: skip
    assert "learning curve forecasts" in following.action and "at 2,000 examples" in (
        following.action
    )
    assert following.command == "tunewise run task.yaml --strategies zero-shot,few-shot,lora"
    assert record.to_dict()["forecast"]["forecast"]["examples"] == 2000


def test_step_3_is_priced_by_the_plans_warm_up_not_by_long_generated_answers(task: Task) -> None:
    # Long generated answers (2.2 s each) and a cheap training (0.8 s an example, the plan's
    # 40-example warm-up): three answers' worth an example (6.6 s) would leave LoRA out of
    # the budget; the plan's rate fits it.
    world = World({"zero-shot": 0.05, "few-shot": 0.07, "lora": 0.3}, drawn=True,
                  per_answer={"zero-shot": 2.2, "few-shot": 1.4, "lora": 2.2},
                  train_per_example=0.8)  # fmt: skip
    timing = Timing(0.0011, 564.0, 336.0, None, 0.8, 1000, 48, warm_up_examples=40)
    ladder, record = climb(task, world, budget=600, train=1000, test=48, timing=timing)
    assert statuses(record)[3] == "run"
    assert "lora" in [r.name for r in ladder.results]
    assert record.compute_seconds <= 600 * 1.05


def test_the_trained_reader_is_priced_at_what_rags_answers_cost_against_the_baseline(
    tmp_path: Path,
) -> None:
    # RAG's answers cost 5x zero-shot's here (long passages): the hybrid, trained and answering
    # with them, is priced at 5x the short prompt's training and answers, not at the floor 2x.
    text, quality = qa_task(tmp_path), READER_QUALITY

    def step_4_estimate(rag_seconds: float) -> float:
        per_answer = {"zero-shot": 2.0, "few-shot": 2.0, "rag": rag_seconds, "hybrid": 2.0}
        world = World(quality, per_answer, metric="token_f1", recall_at_5=0.9)
        _, record = climb(text, world, test=48)
        step4 = next(s for s in record.steps if s.step == 4)
        assert step4.status == "run" and step4.estimated_seconds is not None
        return step4.estimated_seconds

    floor, measured = step_4_estimate(2.0), step_4_estimate(10.0)
    assert measured - FIXED_SECONDS == pytest.approx((floor - FIXED_SECONDS) * 5 / 2)
