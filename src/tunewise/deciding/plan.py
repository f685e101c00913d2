"""The ladder's plan before it spends anything: each step at its smallest useful size and at full
size, in seconds on this machine (and dollars where the task prices compute), and what result
would stop the ladder there. Pure: reads a short timing of the task's own examples.

Per-answer compute scales with the prompt's tokens (measured on the task's own inputs, so long
inputs cost more); training compute with the examples and epochs, at the rate a short warm-up
training measured.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunewise.deciding.ladder import FIXED_SECONDS, MIN_TRAIN_SUBSAMPLE
from tunewise.evaluation.sequential import FIRST_LOOK
from tunewise.strategies.catalog import first_in_ladder

REDRAW_EXAMPLES = 60  # few-shot's demo re-draws answer this many examples per extra draw


@dataclass(frozen=True)
class Timing:
    """What a short timing measured on the task's own examples."""

    seconds_per_token: float  # answering compute per prompt token (zero-shot's answers)
    zero_shot_tokens: float  # mean prompt tokens of each way of answering
    few_shot_tokens: float
    rag_tokens: float | None  # None: the task has no documents
    train_seconds_per_example: float | None  # None: fine-tuning cannot run here
    train_examples: int
    test_examples: int
    epochs: int = 2  # the fine-tuning candidate's epochs
    redraws: int = 3  # few-shot's demo draws

    def answers(self, tokens: float, n: int) -> float:
        return self.seconds_per_token * tokens * n


@dataclass(frozen=True)
class PlannedStep:
    """One step of the plan."""

    step: int
    title: str
    runs: str  # what it would measure
    smallest_seconds: float  # its smallest useful size: the first round of answers, a subsample
    full_seconds: float  # every test example, the whole training set and its epochs
    stops_if: str  # the result that would end the ladder here

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
    prompts = timing.zero_shot_tokens + timing.few_shot_tokens
    redraws = (timing.redraws - 1) * min(REDRAW_EXAMPLES, n) * timing.few_shot_tokens
    steps = [
        PlannedStep(
            1, "prompting", "zero-shot and few-shot",
            timing.answers(prompts, first),
            timing.answers(prompts, n) + timing.seconds_per_token * redraws,
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
