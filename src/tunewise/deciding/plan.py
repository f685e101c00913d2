"""The ladder's plan before it spends anything: each step at its smallest useful size and at full
size, in seconds on this machine (and dollars where the task prices compute), and what result
would stop the ladder there. Pure: reads a short timing of the task's own examples.

Per-answer compute scales with the prompt's tokens (measured on the task's own inputs, so long
inputs cost more); training compute with the examples and epochs, at the rate a short warm-up
training measured. Dollars: an endpoint's answers at its token prices, a local model's compute at
`prices.compute_usd_per_hour`, a fine-tuning service's job at its price per trained token.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol, runtime_checkable

from tunewise.core.catalog import Strategy, first_in_ladder, ladder_strategies, strategy_named
from tunewise.core.costs import PriceList, TokenPrice
from tunewise.deciding.from_results import price_list
from tunewise.evaluation.sequential import FIRST_LOOK
from tunewise.measuring.candidate import CandidateResult, primary_metric
from tunewise.measuring.timing import (
    MIN_WARM_UP_TRAINING,
    WARM_UP_TRAINING,
    Timing,
    untimed_training_rate,
)
from tunewise.task.config import Task

REDRAW_EXAMPLES = 60  # few-shot's demo re-draws answer this many examples per extra draw
MIN_TRAIN_SUBSAMPLE = 100  # a smaller fine-tuning subsample says little about the full set
# A hybrid's answer or training example, at least, against the short prompt's (the ladder
# prices step 4 at RAG's measured cost against the baseline's where that is more).
PASSAGES_FACTOR = 2.0
FIXED_SECONDS = 20.0  # per trained candidate: base model and adapter loads, validation passes
SERVICE_EPOCHS = 3  # a service job's epochs when its n_epochs is "auto" (the service decides)
SERVICE_VALIDATION = 0.1  # the share of train a service job holds out (hosted-fine-tuning's)


@dataclass(frozen=True)
class PlannedStep:
    """One step of the plan."""

    step: int
    title: str
    runs: str  # what it would measure
    smallest_seconds: float  # its smallest useful size: the first round of answers, a subsample
    full_seconds: float  # every test example, the whole training set and its epochs
    stops_if: str  # the result that would end the ladder here
    # Once the ladder ran: the plan's rates applied to the work the step's candidates did
    # (their answers and training), beside the compute they recorded for that work (an index
    # build or a prompt search is not priced by the plan). None: not run.
    estimated_seconds: float | None = None
    actual_seconds: float | None = None
    smallest_usd: float | None = None  # None: nothing it spends is priced
    full_usd: float | None = None


@dataclass(frozen=True)
class PlanPrices:
    """What the plan prices in dollars."""

    compute_usd_per_hour: float | None = None  # a local model's compute
    answering: TokenPrice | None = None  # the answering endpoint's tokens
    tuned: TokenPrice | None = None  # the service-fine-tuned model's tokens and training
    service_epochs: int | None = None  # None: no fine-tuning service at steps 3 and 4

    def answers(
        self, timing: Timing, tokens: float, n: int, *, tuned: bool = False
    ) -> float | None:
        """Dollars for n answers to prompts of `tokens` tokens: the endpoint's token prices,
        else the compute they take at the hourly price, else None."""
        price = self.tuned if tuned else self.answering
        if price is not None:
            per_answer = tokens * price.input_per_million
            per_answer += timing.output_tokens * price.output_per_million
            return n * per_answer / 1e6
        return self.compute(timing.answers(tokens, n))

    def compute(self, seconds: float) -> float | None:
        rate = self.compute_usd_per_hour
        return None if rate is None else seconds * rate / 3600


def plan(
    timing: Timing, target: float | None, metric: str, prices: PlanPrices | None = None
) -> list[PlannedStep]:
    """Steps 1 to 4 as the ladder would walk them (RAG and the hybrid only with documents,
    fine-tuning only where it can run: here, or on the endpoint's fine-tuning service)."""
    prices = prices or PlanPrices()
    goal = f"{metric} >= {target:g}" if target is not None else "a set target"
    first, n = min(FIRST_LOOK, timing.test_examples), timing.test_examples
    redraws = (timing.redraws - 1) * min(REDRAW_EXAMPLES, n)
    zero, few = timing.zero_shot_tokens, timing.few_shot_tokens

    def prompting(answers: int) -> float:
        return timing.answers(zero, answers) + timing.answers(few, answers)

    def prompting_usd(answers: int) -> float | None:
        return _total(prices.answers(timing, zero, answers), prices.answers(timing, few, answers))

    steps = [
        PlannedStep(
            1, "prompting", "zero-shot and few-shot",
            prompting(first), prompting(n) + timing.answers(few, redraws),
            f"a prompting candidate's interval clears {goal}",
            smallest_usd=prompting_usd(first),
            full_usd=_total(prompting_usd(n), prices.answers(timing, few, redraws)),
        )
    ]  # fmt: skip
    rag = timing.rag_tokens
    if rag is not None:
        steps.append(
            PlannedStep(
                2, "RAG", "rag (passages retrieved from the documents)",
                timing.answers(rag, first), timing.answers(rag, n),
                f"RAG's interval clears {goal}",
                smallest_usd=prices.answers(timing, rag, first),
                full_usd=prices.answers(timing, rag, n),
            )
        )  # fmt: skip
    if timing.train_seconds_per_example is not None:
        tuned = first_in_ladder("fine-tuning")
        steps.append(_trained(timing, prices, 3, "fine-tuning", tuned, zero, goal))
        if rag is not None:
            both = first_in_ladder("hybrid")
            steps.append(_trained(timing, prices, 4, "hybrid", both, rag, goal, PASSAGES_FACTOR))
    elif prices.service_epochs is not None:
        for step, family, tokens in ((3, "fine-tuning", zero), (4, "hybrid", rag)):
            name = next((s.name for s in ladder_strategies(family) if s.trains_remotely), None)
            if tokens is not None and name is not None:
                steps.append(_on_service(timing, prices, step, name, tokens, goal))
    return steps


def planned_per_answer(timing: Timing, strategy: Strategy) -> float:
    """Seconds per answer of a prompting strategy after the baseline at the plan's rates: a
    measured one (few-shot) at few-shot's prompt length, any other at zero-shot's."""
    tokens = timing.few_shot_tokens if strategy.ladder == "measured" else timing.zero_shot_tokens
    return timing.answers(tokens, 1)


def _total(*parts: float | None) -> float | None:
    """The sum, or None where a part is not priced."""
    return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)


def _trained(
    timing: Timing,
    prices: PlanPrices,
    step: int,
    title: str,
    name: str,
    tokens: float,
    goal: str,
    factor: float = 1,
) -> PlannedStep:
    """A training step here: the smallest useful subsample for one epoch, or all of train."""
    assert timing.train_seconds_per_example is not None
    rate = timing.train_seconds_per_example * factor
    smallest = min(MIN_TRAIN_SUBSAMPLE, timing.train_examples)
    first = min(FIRST_LOOK, timing.test_examples)
    smallest_seconds = smallest * rate + FIXED_SECONDS + timing.answers(tokens, first)
    full_seconds = (
        timing.train_examples * timing.epochs * rate
        + FIXED_SECONDS
        + timing.answers(tokens, timing.test_examples)
    )
    return PlannedStep(
        step,
        title,
        f"{name} on {smallest:,} examples x 1 epoch, or all {timing.train_examples:,} x "
        f"{timing.epochs}",
        smallest_seconds,
        full_seconds,
        f"{name}'s interval clears {goal}, and no cheaper step does",
        smallest_usd=prices.compute(smallest_seconds),
        full_usd=prices.compute(full_seconds),
    )


def _on_service(
    timing: Timing, prices: PlanPrices, step: int, name: str, tokens: float, goal: str
) -> PlannedStep:
    """A training step on the endpoint's fine-tuning service: it trains on all of train (the
    job is priced by its trained tokens; its time is the service's, not this machine's), then
    its answers, at the fine-tuned model's prices."""
    assert prices.service_epochs is not None
    trained = round(timing.train_examples * (1 - SERVICE_VALIDATION))
    trained_tokens = trained * (tokens + timing.output_tokens) * prices.service_epochs
    rate = prices.tuned.training_per_million if prices.tuned else None
    job = None if rate is None else trained_tokens * rate / 1e6
    first = min(FIRST_LOOK, timing.test_examples)

    def answers(n: int) -> float | None:
        return _total(job, prices.answers(timing, tokens, n, tuned=True))

    return PlannedStep(
        step,
        "fine-tuning" if step == 3 else "hybrid",
        f"{name} on the service: {trained:,} examples x {prices.service_epochs} epochs, about "
        f"{trained_tokens:,.0f} trained tokens",
        timing.answers(tokens, first),
        timing.answers(tokens, timing.test_examples),
        f"{name}'s interval clears {goal}, and no cheaper step does",
        smallest_usd=answers(first),
        full_usd=answers(timing.test_examples),
    )


@dataclass(frozen=True)
class LadderPlan:
    """The plan the ladder started from: the timing, and each step's estimates (after the
    walk, beside what the steps actually cost)."""

    timing: Timing
    steps: tuple[PlannedStep, ...]

    def to_dict(self) -> dict[str, Any]:
        def rounded(row: dict[str, Any]) -> dict[str, Any]:
            return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}

        return {
            "timing": rounded(asdict(self.timing)),
            "steps": [rounded(asdict(step)) for step in self.steps],
        }


@runtime_checkable
class ShowsPlan(Protocol):
    """A progress that shows the ladder's plan before the ladder spends anything."""

    def planned(self, plan: LadderPlan, budget: float | None) -> None: ...


def ladder_plan(
    task: Task, timing: Timing, model: str, service_epochs: int | None = None
) -> LadderPlan:
    """The plan for a timing of the task answered by `model`, against its target;
    `service_epochs`: the epochs of the endpoint's fine-tuning service, where it tunes."""
    target = task.target.min if task.target else None
    prices = plan_prices(price_list(task), model, service_epochs)
    return LadderPlan(timing, tuple(plan(timing, target, primary_metric(task), prices)))


def plan_prices(listed: PriceList, model: str, service_epochs: int | None) -> PlanPrices:
    """The prices the plan reads: the model's tokens where it is a priced endpoint (its
    fine-tuned models' where listed, else the base's), else compute by the hour."""
    answering = listed.tokens.get(model)
    tuned = listed.tokens.get(f"{model}+fine-tuned")
    if tuned is not None and answering is not None and tuned.training_per_million is None:
        tuned = TokenPrice(tuned.input_per_million, tuned.output_per_million,
                           answering.training_per_million)  # fmt: skip
    return PlanPrices(
        None if answering is not None else listed.compute_usd_per_hour,
        answering,
        tuned or answering,
        service_epochs,
    )


def smallest_training_fits(timing: Timing, budget: float | None) -> bool:
    """Whether the smallest useful training could fit the budget at all, before a warm-up
    has timed it (about three forward passes per example): else no warm-up is spent on it."""
    if budget is None:
        return True
    per_example = untimed_training_rate(timing)
    smallest = min(MIN_TRAIN_SUBSAMPLE, timing.train_examples)
    return smallest * per_example + FIXED_SECONDS <= budget


WARM_UP_SHARE = 0.12  # of the budget, at most, for the warm-up training


def warm_up_size(timing: Timing, budget: float | None) -> int:
    """The warm-up training's examples: 40, or fewer (not under 16) where 40 would take more
    than an eighth of the budget at about three forward passes an example."""
    if budget is None:
        return WARM_UP_TRAINING
    per_example = untimed_training_rate(timing)
    affordable = math.floor(WARM_UP_SHARE * budget / max(per_example, 1e-9))
    return max(MIN_WARM_UP_TRAINING, min(WARM_UP_TRAINING, affordable))


def checked(ladder_plan: LadderPlan, results: Iterable[CandidateResult]) -> LadderPlan:
    """Each planned step with the estimate of the work its candidates did, at the plan's
    rates, and the compute they recorded: the check that the plan's estimates hold."""
    estimated: dict[int, float] = {}
    actual: dict[int, float] = {}
    for result in results:
        if not result.measured:
            continue
        step = strategy_named(result.strategy).step
        estimated[step] = estimated.get(step, 0.0) + estimate_of(ladder_plan.timing, result)
        actual[step] = actual.get(step, 0.0) + _answers_and_training(result)
    steps = tuple(
        replace(s, estimated_seconds=estimated.get(s.step), actual_seconds=actual.get(s.step))
        for s in ladder_plan.steps
    )
    return replace(ladder_plan, steps=steps)


def _answers_and_training(result: CandidateResult) -> float:
    """The compute a candidate recorded for what the plan prices: its answers (re-draws
    included) and its training, not an index build or a prompt search."""
    training = result.setup.training
    other_setup = result.setup.seconds - (training.seconds if training else 0.0)
    return result.compute_seconds - other_setup


def estimate_of(timing: Timing, result: CandidateResult) -> float:
    """What the plan's rates say a measured candidate costs: its answers (demo re-draws
    included) at the per-token rate, and its training at the warm-up's rate per example,
    scaled by its prompt's length against zero-shot's."""
    tokens = result.usage.get("input_tokens_per_request", timing.zero_shot_tokens)
    answers = len(result.predictions)
    if result.consistency is not None:
        answers += (len(result.consistency.draws) - 1) * result.consistency.examples
    seconds = timing.answers(tokens, answers)
    training = result.setup.training
    if training is not None and timing.train_seconds_per_example is not None:
        longer = tokens / max(timing.zero_shot_tokens, 1.0)
        rate = timing.train_seconds_per_example * max(longer, 1.0)
        epochs = int(result.params.get("epochs", 1))  # a training strategy's settings
        seconds += training.examples * epochs * rate + FIXED_SECONDS
    return seconds
