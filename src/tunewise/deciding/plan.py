"""The ladder's plan before it spends anything: each step at its smallest useful size and at full
size, in seconds on this machine (and dollars where the task prices compute), and what result
would stop the ladder there. Pure: reads a short timing of the task's own examples.

Per-answer compute scales with the prompt's tokens (measured on the task's own inputs, so long
inputs cost more); training compute with the examples and epochs, at the rate a short warm-up
training measured.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol, runtime_checkable

from tunewise.core.catalog import first_in_ladder, strategy_named
from tunewise.evaluation.sequential import FIRST_LOOK
from tunewise.measuring.candidate import CandidateResult, primary_metric
from tunewise.measuring.timing import MIN_WARM_UP_TRAINING, WARM_UP_TRAINING, Timing
from tunewise.task.config import Task

REDRAW_EXAMPLES = 60  # few-shot's demo re-draws answer this many examples per extra draw
MIN_TRAIN_SUBSAMPLE = 100  # a smaller fine-tuning subsample says little about the full set
FIXED_SECONDS = 20.0  # per trained candidate: base model and adapter loads, validation passes


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

    def usd(self, compute_usd_per_hour: float | None) -> tuple[float, float] | None:
        if compute_usd_per_hour is None:
            return None
        rate = compute_usd_per_hour / 3600
        return self.smallest_seconds * rate, self.full_seconds * rate


def plan(timing: Timing, target: float | None, metric: str) -> list[PlannedStep]:
    """Steps 1 to 4 as the ladder would walk them (RAG and the hybrid only with documents,
    fine-tuning only where it can run)."""
    goal = f"{metric} >= {target:g}" if target is not None else "a set target"
    first, n = min(FIRST_LOOK, timing.test_examples), timing.test_examples
    redraws = (timing.redraws - 1) * min(REDRAW_EXAMPLES, n)

    def prompting(answers: int) -> float:
        zero, few = timing.zero_shot_tokens, timing.few_shot_tokens
        return timing.answers(zero, answers) + timing.answers(few, answers)

    steps = [
        PlannedStep(
            1, "prompting", "zero-shot and few-shot",
            prompting(first),
            prompting(n) + timing.answers(timing.few_shot_tokens, redraws),
            f"a prompting candidate's interval clears {goal}",
        )
    ]  # fmt: skip
    if timing.rag_tokens is not None:
        steps.append(
            PlannedStep(
                2, "RAG", "rag (passages retrieved from the documents)",
                timing.answers(timing.rag_tokens, first),
                timing.answers(timing.rag_tokens, n),
                f"RAG's interval clears {goal}",
            )
        )  # fmt: skip
    if timing.train_seconds_per_example is not None:
        tuned = first_in_ladder("fine-tuning")
        steps.append(_trained(timing, 3, "fine-tuning", tuned, timing.zero_shot_tokens, goal))
        if timing.rag_tokens is not None:
            both = first_in_ladder("hybrid")
            steps.append(_trained(timing, 4, "hybrid", both, timing.rag_tokens, goal, 2.0))
    return steps


def _trained(
    timing: Timing, step: int, title: str, name: str, tokens: float, goal: str, factor: float = 1
) -> PlannedStep:
    """A training step: the smallest useful subsample for one epoch, or all of train."""
    assert timing.train_seconds_per_example is not None
    rate = timing.train_seconds_per_example * factor
    smallest = min(MIN_TRAIN_SUBSAMPLE, timing.train_examples)
    first = min(FIRST_LOOK, timing.test_examples)
    return PlannedStep(
        step,
        title,
        f"{name} on {smallest:,} examples x 1 epoch, or all {timing.train_examples:,} x "
        f"{timing.epochs}",
        smallest * rate + FIXED_SECONDS + timing.answers(tokens, first),
        timing.train_examples * timing.epochs * rate
        + FIXED_SECONDS
        + timing.answers(tokens, timing.test_examples),
        f"{name}'s interval clears {goal}, and no cheaper step does",
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


def ladder_plan(task: Task, timing: Timing) -> LadderPlan:
    """The plan for a timing of the task, against its target."""
    target = task.target.min if task.target else None
    return LadderPlan(timing, tuple(plan(timing, target, primary_metric(task))))


def smallest_training_fits(timing: Timing, budget: float | None) -> bool:
    """Whether the smallest useful training could fit the budget at all, before a warm-up
    has timed it (about three forward passes per example): else no warm-up is spent on it."""
    if budget is None:
        return True
    per_example = 3 * timing.seconds_per_token * timing.zero_shot_tokens
    smallest = min(MIN_TRAIN_SUBSAMPLE, timing.train_examples)
    return smallest * per_example + FIXED_SECONDS <= budget


WARM_UP_SHARE = 0.12  # of the budget, at most, for the warm-up training


def warm_up_size(timing: Timing, budget: float | None) -> int:
    """The warm-up training's examples: 40, or fewer (not under 16) where 40 would take more
    than an eighth of the budget at about three forward passes an example."""
    if budget is None:
        return WARM_UP_TRAINING
    per_example = 3 * timing.seconds_per_token * timing.zero_shot_tokens
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
