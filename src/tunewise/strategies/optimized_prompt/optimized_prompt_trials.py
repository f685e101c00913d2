"""What the prompt search tries: instructions a proposer model writes from the contract and a few
training examples, and demo sets drawn from the demo pool (a rung is scored by
tunewise.evaluation.graded.metric_value, as the test metric is)."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunewise.core.setup import Setup
from tunewise.inference.predictor import Request
from tunewise.inference.prompts import format_instruction
from tunewise.models.backend import Backend, Message
from tunewise.strategies.few_shot.demos import similar_demos, stratified_demos
from tunewise.task.config import Contract
from tunewise.task.data import Example

PROPOSER_SYSTEM = "You write the instruction line of a prompt for a small language model."
PROPOSAL_EXAMPLES = 4  # training examples shown to the proposer
MAX_INSTRUCTION_CHARS = 400


@dataclass(frozen=True)
class DemoSet:
    """One way of choosing demonstrations: a fixed list (ids recorded) or chosen per input."""

    name: str  # stratified | bootstrapped | similar
    choose: Callable[[str], Sequence[Example]]
    ids: tuple[str, ...] | None  # None: chosen per input (similar)


def fixed_set(name: str, demos: Sequence[Example]) -> DemoSet:
    kept = tuple(demos)
    return DemoSet(name, lambda _: kept, tuple(d.id for d in kept))


@dataclass(frozen=True)
class Trial:
    """One (instruction, demo set) pair the search scores."""

    number: int
    instruction: str
    demos: DemoSet

    def contract(self, contract: Contract) -> Contract:
        """The task's contract with this trial's instruction as its objective."""
        return contract.model_copy(update={"objective": self.instruction})


@dataclass
class AskOnce:
    """A predictor for one fixed conversation (a proposal request), so it goes through predict()
    and the response cache like every other model call."""

    name: str
    backend: Backend
    messages: list[Message]
    strategy: str = "optimized-prompt"
    params: dict[str, Any] = field(default_factory=dict)
    setup: Setup = field(default_factory=Setup)

    def request(self, example: Example) -> Request:
        return Request(self.messages)


def proposal_messages(contract: Contract, examples: Sequence[Example]) -> list[Message]:
    """Ask for one sentence that tells a model how to do the task, shown a few solved inputs."""
    shown = "\n\n".join(f"Input: {e.input}\nOutput: {e.output}" for e in examples)
    brief = "\n".join(
        [
            f"Task: {contract.objective.strip()}",
            f"Audience: {contract.audience.strip()}",
            f"Source material: {contract.source_material.strip()}",
            f"Answer format: {format_instruction(contract.output_format)}",
            "",
            "Examples of inputs and their correct outputs:",
            "",
            shown,
            "",
            "Write one sentence that tells a model how to do this task well. "
            "Reply with the sentence only.",
        ]
    )
    return [{"role": "system", "content": PROPOSER_SYSTEM}, {"role": "user", "content": brief}]


def proposal_examples(pool: Sequence[Example], seed: int) -> list[Example]:
    """A seeded, label-balanced handful of pool examples; another seed shows others."""
    return stratified_demos(pool, min(PROPOSAL_EXAMPLES, len(pool)), seed)


_PREFIX = re.compile(r"^\s*(?:[-*\d.)\s]+|instruction\s*:|sentence\s*:)\s*", re.IGNORECASE)


def clean_instruction(text: str) -> str | None:
    """The proposal's first non-empty line, without list marks, labels or quotes; None when
    nothing usable is left."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = _PREFIX.sub("", line).strip().strip("\"'`").strip()
    line = " ".join(line.split())
    if len(line) > MAX_INSTRUCTION_CHARS:
        cut = line[:MAX_INSTRUCTION_CHARS]
        line = cut[: cut.rfind(". ") + 1] or cut
    return line if len(line.split()) >= 3 else None


def demo_sets(
    pool: Sequence[Example], k: int, seed: int, bootstrapped: Sequence[Example]
) -> list[DemoSet]:
    """stratified (seeded, label-balanced), bootstrapped (pool examples the model answered
    correctly with the plain prompt) and similar (each input's BM25 neighbours in the pool)."""
    k = min(k, len(pool))
    sets = [fixed_set("stratified", stratified_demos(pool, k, seed))]
    if bootstrapped:
        sets.append(fixed_set("bootstrapped", bootstrapped))
    if len(pool) > k:  # with k = the whole pool, similar would only reorder the same demos
        sets.append(DemoSet("similar", similar_demos(pool, k), None))
    return sets


def bootstrap_choice(
    tried: Sequence[Example], scores: Sequence[float], k: int, seed: int, labels: bool
) -> list[Example]:
    """Up to k tried examples the model got right: label-balanced for label tasks, else the
    best scored (above zero) in their tried order."""
    right = [e for e, s in zip(tried, scores, strict=True) if s >= 1.0]
    if labels:
        return stratified_demos(right, min(k, len(right)), seed)
    ranked = sorted((i for i, s in enumerate(scores) if s > 0), key=lambda i: (-scores[i], i))
    return [tried[i] for i in ranked[:k]]


def capped(trials: Sequence[Trial], cap: int, seed: int) -> list[Trial]:
    """At most `cap` trials: the first (the baseline) always, a seeded choice of the rest."""
    if len(trials) <= cap:
        return list(trials)
    rest = random.Random(seed).sample(list(trials[1:]), cap - 1)
    return [trials[0], *sorted(rest, key=lambda t: t.number)]


@dataclass(frozen=True)
class Rung:
    examples: int  # the first `examples` of the validation slice
    score: float


def successive_halving(
    trials: Sequence[Trial], examples: int, score: Callable[[Sequence[Trial], int], list[float]]
) -> tuple[Trial, dict[int, list[Rung]]]:
    """Score the live trials on the first quarter of the examples, keep the better half (ties:
    lower trial number; trial 0 always stays), double the examples; stop when one trial is left
    or every example was used. The winner is the best on the last rung it ran."""
    rungs: dict[int, list[Rung]] = {t.number: [] for t in trials}
    alive = list(trials)
    size = examples if len(alive) == 1 else max(1, math.ceil(examples / 4))
    while True:
        for trial, value in zip(alive, score(alive, size), strict=True):
            rungs[trial.number].append(Rung(size, value))
        if len(alive) == 1 or size >= examples:
            break
        ranked = sorted(alive, key=lambda t: (-rungs[t.number][-1].score, t.number))
        kept = ranked[: max(1, len(alive) // 2)]
        if trials[0] in alive and trials[0] not in kept:
            kept.append(trials[0])
        alive = sorted(kept, key=lambda t: t.number)
        size = min(examples, size * 2)
    winner = min(alive, key=lambda t: (-rungs[t.number][-1].score, t.number))
    return winner, rungs


def trial_record(trial: Trial, rungs: Sequence[Rung]) -> dict[str, Any]:
    return {
        "trial": trial.number,
        "instruction": trial.instruction,
        "demos": trial.demos.name,
        "demo_ids": list(trial.demos.ids) if trial.demos.ids is not None else None,
        "rungs": [{"examples": r.examples, "score": r.score} for r in rungs],
    }


def winner_record(trial: Trial, rungs: Sequence[Rung]) -> dict[str, Any]:
    last = rungs[-1]
    return {**trial_record(trial, rungs), "score": last.score, "examples": last.examples}
