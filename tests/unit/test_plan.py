"""`tunewise plan`: each step priced at its smallest useful size and at full size, from a short
timing of the task's own examples, before anything is measured."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ScriptedBackend
from typer.testing import CliRunner

from tunewise.cli.main import app
from tunewise.core.costs import PriceList, TokenPrice
from tunewise.core.setup import Setup, Training
from tunewise.deciding.plan import (
    FIXED_SECONDS,
    LadderPlan,
    PlanPrices,
    checked,
    plan,
    plan_prices,
    smallest_training_fits,
    warm_up_size,
)
from tunewise.inference.predict import Prediction
from tunewise.measuring.candidate import CandidateResult
from tunewise.measuring.timing import Timing
from tunewise.task.config import Task, TextFormat

pytestmark = pytest.mark.usefixtures("contained_environment")


def timing(**changes: object) -> Timing:
    values: dict[str, object] = {
        "seconds_per_token": 0.001, "zero_shot_tokens": 100.0, "few_shot_tokens": 400.0,
        "rag_tokens": None, "train_seconds_per_example": 0.5, "train_examples": 2000,
        "test_examples": 300, "epochs": 2, "redraws": 3,
    }  # fmt: skip
    return Timing(**(values | changes))  # type: ignore[arg-type]


def as_text_task(task: Task) -> Task:
    """The same task with generated (free-text) answers."""
    writing = task.contract.model_copy(update={"output_format": TextFormat(type="text")})
    return task.model_copy(update={"contract": writing})


def test_each_step_is_priced_small_and_full_from_the_measured_rates() -> None:
    steps = plan(timing(), 0.9, "accuracy")
    assert [s.step for s in steps] == [1, 3]  # no documents: no RAG, no hybrid
    prompting, tuning = steps
    # 24 answers of each prompt first; all 300, and two more draws of 60 few-shot answers.
    assert prompting.smallest_seconds == pytest.approx(24 * 0.5)
    assert prompting.full_seconds == pytest.approx(300 * 0.5 + 2 * 60 * 0.4)
    # 100 examples x 1 epoch (+ loads, + 24 answers); all 2,000 x 2 epochs (+ 300 answers).
    assert tuning.smallest_seconds == pytest.approx(100 * 0.5 + 20 + 24 * 0.1)
    assert tuning.full_seconds == pytest.approx(2000 * 2 * 0.5 + 20 + 300 * 0.1)
    assert "accuracy >= 0.9" in tuning.stops_if
    assert prompting.smallest_usd is None  # nothing priced
    # Compute at $3.60 an hour: a tenth of a cent a second.
    priced = plan(timing(), 0.9, "accuracy", PlanPrices(compute_usd_per_hour=3.6))[1]
    assert (priced.smallest_usd, priced.full_usd) == pytest.approx(
        (tuning.smallest_seconds / 1000, 2.05)
    )


def test_an_endpoints_steps_are_priced_by_its_tokens_and_its_service_by_trained_tokens() -> None:
    # $0.15 / $0.60 per million input / output tokens; fine-tuned $0.30 / $1.20, $3 per million
    # trained tokens; 100-token prompts, 2-token answers; the service tunes for 3 epochs.
    rates = timing(train_seconds_per_example=None, output_tokens=2.0)
    listed = PriceList(
        compute_usd_per_hour=3.6,  # a local machine's: not the endpoint's answers
        tokens={"mini": TokenPrice(0.15, 0.60, 3.0), "mini+fine-tuned": TokenPrice(0.30, 1.20)},
    )
    prices = plan_prices(listed, "mini", service_epochs=3)
    prompting, service = plan(rates, 0.9, "accuracy", prices)
    per_zero, per_few = (100 * 0.15 + 2 * 0.6) / 1e6, (400 * 0.15 + 2 * 0.6) / 1e6
    assert prompting.smallest_usd == pytest.approx(24 * (per_zero + per_few))
    assert prompting.full_usd == pytest.approx(300 * (per_zero + per_few) + 120 * per_few)
    # All 2,000 examples but the 10% validation slice, 102 tokens each, 3 epochs: 550,800
    # trained tokens at $3 per million, then the fine-tuned model's answers.
    assert (service.step, service.title) == (3, "fine-tuning")
    assert "hosted-fine-tuning on the service: 1,800 examples x 3 epochs" in service.runs
    job, answer = 1800 * 102 * 3 * 3.0 / 1e6, (100 * 0.30 + 2 * 1.2) / 1e6
    assert service.smallest_usd == pytest.approx(job + 24 * answer)
    assert service.full_usd == pytest.approx(job + 300 * answer)
    assert service.smallest_seconds == pytest.approx(24 * 0.1)  # its answers: no training here
    # A service that does not fine-tune adds no step; a local model's steps cost compute.
    assert [s.step for s in plan(rates, 0.9, "accuracy", plan_prices(listed, "mini", None))] == [1]
    local = plan_prices(listed, "local:model", None)
    assert local.answering is None and local.compute_usd_per_hour == 3.6


def test_documents_add_rag_and_the_hybrid_and_no_local_model_drops_training() -> None:
    steps = plan(timing(rag_tokens=1536.0), 0.5, "token_f1")
    assert [s.step for s in steps] == [1, 2, 3, 4]
    assert steps[1].full_seconds == pytest.approx(300 * 1.536)
    assert steps[3].smallest_seconds > steps[2].smallest_seconds  # passages, twice the training
    assert [s.step for s in plan(timing(train_seconds_per_example=None), 0.5, "x")] == [1]


def test_the_plan_command_prints_its_table_without_measuring_candidates(
    scripted: ScriptedBackend, tiny_task: Path
) -> None:
    result = CliRunner().invoke(app, ["plan", str(tiny_task), "--budget", "5m"])
    assert result.exit_code == 0, result.output
    text = re.sub(r"\s+", " ", result.stdout)
    assert "prompting" in text and "zero-shot" in text and "smallest useful" in text
    assert "fine-tuning cannot run here" in text  # the scripted model is not local weights
    assert "a budget of 5.0 min" in text
    asked = {m[-1]["content"] for m in scripted.calls}
    assert len(asked) <= 8  # only the timed answers


def measured(
    strategy: str, answers: int, seconds_each: float, tokens: float, trained: int = 0
) -> CandidateResult:
    """A candidate that answered `answers` examples in `seconds_each` each, and trained on
    `trained` examples (one epoch) at a second each."""
    predictions = [
        Prediction(strategy, str(i), "a", tokens, 1, 1.0, (), False, "stop",
                   compute_ms=seconds_each * 1000)
        for i in range(answers)
    ]  # fmt: skip
    usage = {"input_tokens_per_request": tokens, "output_tokens_per_request": 1.0}
    training = Training(seconds=float(trained), examples=trained, validation_examples=0)
    setup = Setup(seconds=float(trained), training=training) if trained else Setup()
    params = {"epochs": 1} if trained else {}
    return CandidateResult(strategy, strategy, "m", "f", params, {}, usage, setup, predictions)


def test_each_step_that_ran_carries_the_plans_estimate_of_its_work_beside_its_cost() -> None:
    rates = timing(train_seconds_per_example=0.8)
    steps = LadderPlan(rates, tuple(plan(rates, 0.9, "accuracy")))
    ran = [
        measured("zero-shot", 24, 0.12, 100.0),
        measured("few-shot", 48, 0.5, 400.0),
        measured("lora", 97, 0.15, 100.0, trained=120),
    ]
    prompting, tuning = checked(steps, ran).steps
    # The per-token rate (1 ms) times each candidate's own prompt tokens and answers.
    assert prompting.estimated_seconds == pytest.approx(24 * 0.1 + 48 * 0.4)
    assert prompting.actual_seconds == pytest.approx(24 * 0.12 + 48 * 0.5)
    # Its answers, and its training at the warm-up's rate per example, plus the loads.
    assert tuning.estimated_seconds == pytest.approx(97 * 0.1 + 120 * 0.8 + FIXED_SECONDS)
    assert tuning.actual_seconds == pytest.approx(97 * 0.15 + 120)
    untouched = checked(steps, ran[:1]).steps[1]
    assert untouched.estimated_seconds is None and untouched.actual_seconds is None


def test_no_warm_up_training_is_spent_where_even_the_smallest_training_cannot_fit() -> None:
    rates = timing()  # 0.1 s to read a prompt: about 0.3 s per training example untimed
    assert smallest_training_fits(rates, None)
    assert smallest_training_fits(rates, 100 * 0.303 + FIXED_SECONDS)
    assert not smallest_training_fits(rates, 30.0)


def test_training_is_first_priced_from_reading_a_prompt_never_from_generating_an_answer(
    scripted: ScriptedBackend, tiny_task: Path
) -> None:
    from tunewise.measuring.selection import ladder_settings
    from tunewise.measuring.timing import untimed_training_rate, with_reading_rate
    from tunewise.run import RunOptions, load_data
    from tunewise.task.data import Example
    from tunewise.task.loading import load_task

    task = as_text_task(load_task(tiny_task))
    dataset, _ = load_data(task, RunOptions())
    pair = [Example(f"t{i}", "a long input " * 30, "its summary", f"x:{i}") for i in range(2)]
    baseline = ladder_settings(task)("zero-shot")
    # Whole answers of 60 tokens to 100-token prompts priced at 10 ms a prompt token: three
    # such "forward passes" would price a training example at 4.8 s.
    whole = timing(seconds_per_token=0.01, output_tokens=60.0)
    assert untimed_training_rate(whole) == pytest.approx(4.8)
    now = [0.0]
    reads: list[int] = []
    answer = scripted.generate

    def generate(batch: list[object], max_new_tokens: int, sampling: object = None) -> object:
        reads.append(max_new_tokens)
        now[0] += 0.001 * sum(scripted.count_tokens(m) for m in batch)  # reading: 1 ms a token
        return answer(batch, max_new_tokens, sampling)  # type: ignore[arg-type]

    scripted.generate = generate  # type: ignore[method-assign]
    read = with_reading_rate(whole, task, baseline, dataset, pair, scripted, lambda: now[0])
    assert reads == [1, 1]  # one untimed forward pass (it may load the model), one timed
    assert read.seconds_per_read_token == pytest.approx(0.001)
    assert untimed_training_rate(read) == pytest.approx(3 * 0.001 * 160)
    # Where reading was priced apart from generating, that price stands and nothing is asked.
    apart = timing(seconds_per_answer=0.2)
    assert with_reading_rate(apart, task, baseline, dataset, pair, scripted) == apart
    assert reads == [1, 1]


def test_the_warm_up_shrinks_where_40_examples_would_take_over_an_eighth_of_the_budget() -> None:
    # About three forward passes an example: 0.3 s here, 2.4 s for long inputs.
    assert warm_up_size(timing(), None) == 40
    assert warm_up_size(timing(), 420) == 40
    long_inputs = timing(seconds_per_token=0.0024, zero_shot_tokens=331.0)
    assert warm_up_size(long_inputs, 420) == 21  # 0.12 x 420 s / 2.38 s
    assert warm_up_size(long_inputs, 60) == 16  # never below four steps of four


def test_answering_splits_into_reading_each_prompt_token_and_generating_each_answer() -> None:
    from tunewise.measuring.timing import _answer_line

    # The same 2 inputs: 0.5 s each zero-shot (100 tokens), 0.8 s few-shot (400 tokens), so
    # reading costs 1 ms a token. A wide batch of 24 shares its generating: 0.2 s an answer.
    zero, few = measured("zero-shot", 2, 0.5, 100.0), measured("few-shot", 2, 0.8, 400.0)
    wide = measured("zero-shot", 24, 0.3, 100.0)
    per_answer, per_token = _answer_line(zero, few, wide)
    assert (per_answer, per_token) == pytest.approx((0.2, 0.001))
    rates = timing(seconds_per_token=per_token, seconds_per_answer=per_answer)
    assert rates.answers(400.0, 10) == pytest.approx(6.0)  # not 4x zero-shot's 0.3 s
    # Longer prompts that cost no more: all of it per token, at the wide batch's rate.
    assert _answer_line(zero, measured("few-shot", 2, 0.4, 400.0), wide) == (0.0, 0.003)
    # A token price the wide batch cannot carry (its answers cost less than their reading).
    assert _answer_line(zero, few, measured("zero-shot", 24, 0.05, 100.0)) == (0.0, 0.0005)


def test_generation_is_timed_in_one_batch_as_wide_as_the_first_round(
    scripted: ScriptedBackend, tiny_task: Path
) -> None:
    from tunewise.measuring.timing import answers_timed
    from tunewise.task.loading import load_task

    labels = load_task(tiny_task)
    text = as_text_task(labels)
    scripted.batch_size = 32
    assert answers_timed(labels, scripted) == 8  # labels are scored an input at a time
    assert answers_timed(text, scripted) == 24  # the first round's answers, in one batch
    scripted.batch_size = 16  # an endpoint's concurrency: its own batches
    assert answers_timed(text, scripted) == 16


def test_a_deadline_narrows_the_timing_and_the_few_shot_pair_is_asked_once_if_it_fits(
    scripted: ScriptedBackend, tiny_task: Path
) -> None:
    import time

    from tunewise.measuring.selection import ladder_settings
    from tunewise.measuring.timing import time_answers
    from tunewise.run import RunOptions, load_data
    from tunewise.task.data import Example
    from tunewise.task.loading import load_task

    task = load_task(tiny_task)
    dataset, _ = load_data(task, RunOptions())
    test = [Example(f"t{i}", f"text {i}", "positive", f"x:{i}") for i in range(20)]
    asked: list[tuple[str, int]] = []
    draws: list[int] = []

    def measure(spec: object, name: str, examples: list[object]) -> CandidateResult:
        asked.append((name, len(examples)))
        if name == "few-shot":
            draws.append(getattr(spec, "redraws", 0))
        tokens = 400.0 if name == "few-shot" else 100.0
        return measured(name, len(examples), 1.0, tokens)  # a second an answer

    def timed(deadline: float | None) -> Timing:
        asked.clear()
        return time_answers(task, dataset, test, ladder_settings(task), backend=scripted,
                            measure=measure, deadline=deadline)  # fmt: skip

    rates = timed(None)
    assert asked == [("zero-shot", 1), ("zero-shot", 2), ("few-shot", 2), ("zero-shot", 8)]
    assert draws == [1] and rates.redraws == 3  # timed on its first draw; the plan keeps 3
    assert timed(time.perf_counter() + 1000) == rates
    # 7 s left: half of it answers 3 more at the pair's second an answer.
    timed(time.perf_counter() + 7.0)
    assert asked[-1] == ("zero-shot", 3)
    # 3 s left: the zero-shot pair (2 s) fits; what it leaves answers no wide batch.
    timed(time.perf_counter() + 3.0)
    assert asked[:2] == [("zero-shot", 1), ("zero-shot", 2)] and ("zero-shot", 8) not in asked
    # No time left: the first answer alone prices every answer, per prompt token.
    rates = timed(time.perf_counter())
    assert asked == [("zero-shot", 1)]
    assert (rates.seconds_per_answer, rates.seconds_per_token) == pytest.approx((0.0, 0.01))
    assert rates.few_shot_tokens > rates.zero_shot_tokens  # counted, not asked
