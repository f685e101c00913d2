"""Step 1 of the framework, third rung: a prompt found by search on a validation slice of train.

The search tries instructions (the contract's objective, plus ones a proposer model writes from
the contract and a few training examples) times demo sets (stratified, bootstrapped: examples the
model answers correctly with the plain prompt, similar: BM25 neighbours), at most `trials` pairs.
Successive halving scores every trial on the first quarter of the slice, keeps the better half,
doubles the examples, and stops when one trial is left or the slice is used up. Trial 0, the
contract prompt with the stratified demos (plain few-shot), is never dropped, so the winner
scores at least as well as it on the examples both were scored on.

The preparer only ever receives the train split: the validation slice and the demo pool are both
drawn from it. Every model call goes through predict() and the response cache, so a re-run is
served from the cache and an interrupted search resumes. The search's compute is the
candidate's setup cost.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tunewise.core.progress import Progress, SilentProgress
from tunewise.core.setup import PromptSearch, Setup
from tunewise.errors import TunewiseError
from tunewise.evaluation.graded import JUDGE, Judging, metric_scores, metric_value
from tunewise.home import tunewise_home
from tunewise.inference.cache import ResponseCache
from tunewise.inference.judge import ModelJudge
from tunewise.inference.predict import Advance, Spent, predict
from tunewise.inference.predictor import Predictor, PromptPredictor
from tunewise.inference.prompts import system_prompt
from tunewise.models.backend import Backend, Sampling
from tunewise.models.registry import load_backend
from tunewise.strategies.optimized_prompt import OptimizedPromptCandidate
from tunewise.strategies.optimized_prompt.optimized_prompt_trials import (
    AskOnce,
    Rung,
    Trial,
    bootstrap_choice,
    capped,
    clean_instruction,
    demo_sets,
    proposal_examples,
    proposal_messages,
    successive_halving,
    trial_record,
    winner_record,
)
from tunewise.task.config import METRICS_BY_FORMAT, Contract, Task, TextFormat
from tunewise.task.data import Example, sample_examples, stratify_by_label

PROPOSAL_TEMPERATURE = 0.9
PROPOSAL_TOKENS = 80
BOOTSTRAP_TRIES = 4  # pool examples answered with the plain prompt, per wanted demo (at least 16)
MIN_TRAIN = 4


@dataclass
class Search:
    """The search's model calls, all through predict() and the response cache."""

    task: Task
    backend: Backend
    cache: ResponseCache
    name: str
    metric: str
    spent: Spent
    proposer_spent: Spent
    judge: Judging | None = None  # the target is the judge: it grades the trials' answers

    def answers(
        self, predictor: Predictor, examples: Sequence[Example], advance: Advance
    ) -> list[str]:
        """The model's answers (greedy, no repair) to examples, in order."""
        if not examples:
            return []
        predictions = predict(
            predictor,
            examples,
            self.task.contract.output_format,
            self.cache,
            max_new_tokens=self.task.max_new_tokens or 64,
            advance=advance,
        )
        self.spent.add(predictions)
        return [p.output for p in predictions]

    def scores(
        self, predictor: Predictor, examples: Sequence[Example], advance: Advance
    ) -> list[float]:
        outputs = self.answers(predictor, examples, advance)
        return metric_scores(
            self.task, self.metric, outputs, examples, judge=self.judge, candidate=self.name
        )


def prepare(
    task: Task,
    spec: OptimizedPromptCandidate,
    train: Sequence[Example],
    backend: Backend,
    name: str,
    progress: Progress | None = None,
) -> PromptPredictor:
    """Search instructions x demo sets on a slice of train; predict with the winner."""
    progress = progress or SilentProgress()
    validation, pool = search_split(task, spec, train, name)
    output_type = task.contract.output_format.type
    metric = task.target.metric if task.target else METRICS_BY_FORMAT[output_type][0]
    cache = ResponseCache(tunewise_home() / "cache.sqlite")
    search = Search(task, backend, cache, name, metric, Spent(), Spent())
    judge = _search_judge(task, backend, cache) if metric == JUDGE and task.judge else None
    search.judge = judge
    try:
        outcome = run_search(search, spec, validation, pool, progress)
    finally:
        cache.close()
    if judge is not None:  # grading the trials is part of the search's cost
        for key, value in vars(judge.total).items():
            setattr(search.spent, key, getattr(search.spent, key) + value)
    winner = outcome.winner
    contract = winner.contract(task.contract)
    record = search_record(search, outcome, len(validation), len(pool), contract)
    params = {
        "k": min(spec.k, len(pool)),
        "trials": spec.trials,
        "instructions": spec.instructions,
        "validation_examples": len(validation),
        "proposer": outcome.proposer,
        "seed": task.seed,
        "winner_trial": winner.number,
        "demo_set": winner.demos.name,
    }
    return PromptPredictor(
        name, spec.strategy, backend, contract, winner.demos.choose, params=params,
        setup=Setup(seconds=record["seconds"], search=PromptSearch(**record)),
    )  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """What the search tried and found."""

    proposer: str  # the model spec that wrote instructions
    asked: int
    proposed: list[str]
    bootstrap_tried: int
    bootstrapped: list[Example]
    trials: list[Trial]
    winner: Trial
    rungs: dict[int, list[Rung]]


def run_search(
    search: Search,
    spec: OptimizedPromptCandidate,
    validation: Sequence[Example],
    pool: Sequence[Example],
    progress: Progress,
) -> Outcome:
    """Propose instructions, bootstrap demos, then successive halving over their pairs."""
    task, k = search.task, min(spec.k, len(pool))
    proposer = search.backend
    if spec.proposer is not None and spec.proposer != proposer.spec:
        proposer = load_backend(spec.proposer, task.models)
    proposed = propose(search, proposer, spec.instructions, pool, progress)
    tried, chosen = bootstrap(search, pool, k, progress)
    instructions = [task.contract.objective.strip(), *proposed]
    pairs = itertools.product(instructions, demo_sets(pool, k, task.seed, chosen))
    trials = capped([Trial(n, i, s) for n, (i, s) in enumerate(pairs)], spec.trials, task.seed)
    scorer = rung_scorer(search, validation, progress)
    winner, rungs = successive_halving(trials, len(validation), scorer)
    return Outcome(proposer.spec, spec.instructions, proposed, tried, chosen, trials, winner, rungs)


def search_record(
    search: Search, outcome: Outcome, validation: int, pool: int, contract: Contract
) -> dict[str, Any]:
    """The trace for results.json: every trial's rungs, the winner and what the search cost.
    Requests, calls and compute cover the proposer too; tokens stay per model."""
    both = usage(search.spent, search.proposer_spent)
    proposer = {"model": outcome.proposer, "asked": outcome.asked, "kept": len(outcome.proposed)}
    winner = outcome.winner
    return {
        "metric": search.metric,
        "validation_examples": validation,
        "pool_examples": pool,
        "proposer": proposer | usage(search.proposer_spent),
        "bootstrap": {"tried": outcome.bootstrap_tried, "kept": len(outcome.bootstrapped)},
        "trials": [trial_record(t, outcome.rungs[t.number]) for t in outcome.trials],
        "winner": winner_record(winner, outcome.rungs[winner.number]),
        "prompt": system_prompt(contract),
        **usage(search.spent),
        **{key: both[key] for key in ("requests", "calls", "seconds")},
    }


def search_split(
    task: Task, spec: OptimizedPromptCandidate, train: Sequence[Example], name: str
) -> tuple[list[Example], list[Example]]:
    """A seeded validation slice of train (at most half of it, label-interleaved so every rung
    keeps the label mix) and the rest of train as the demo pool."""
    if len(train) < MIN_TRAIN:
        raise TunewiseError(
            f"candidate '{name}': optimized-prompt needs at least {MIN_TRAIN} training examples "
            f"(a validation slice and a demo pool); train has {len(train)}"
        )
    stratify = stratify_by_label(task.contract.output_format)
    size = min(spec.validation_examples, len(train) // 2)
    validation = sample_examples(train, size, task.seed, stratify)
    taken = {id(e) for e in validation}
    pool = [e for e in train if id(e) not in taken]
    return (interleave(validation) if stratify else validation), pool


def interleave(examples: Sequence[Example]) -> list[Example]:
    """Round-robin across outputs (labels) in order of first appearance."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for e in examples:
        groups[e.output].append(e)
    rounds = itertools.zip_longest(*groups.values())
    return [e for row in rounds for e in row if e is not None]


def propose(
    search: Search, proposer: Backend, wanted: int, pool: Sequence[Example], progress: Progress
) -> list[str]:
    """Up to `wanted` distinct instructions, one sampled proposal each (seeded, so a re-run asks
    the same requests and is served from the cache); unusable proposals are left out."""
    task = search.task
    advance = progress.stage(f"{search.name} propose", wanted)
    kept: list[str] = []
    seen = {task.contract.objective.strip().lower()}
    for n in range(wanted):
        seed = task.seed + n
        ask = AskOnce(
            search.name, proposer, proposal_messages(task.contract, proposal_examples(pool, seed))
        )
        [answer] = predict(
            ask,
            [Example(f"proposal-{n}", "", "", "proposal")],
            TextFormat(type="text"),
            search.cache,
            max_new_tokens=PROPOSAL_TOKENS,
            advance=advance,
            sampling=Sampling(PROPOSAL_TEMPERATURE, seed),
        )
        search.proposer_spent.add([answer])
        instruction = clean_instruction(answer.output)
        if instruction and instruction.lower() not in seen:
            seen.add(instruction.lower())
            kept.append(instruction)
    return kept


def bootstrap(
    search: Search, pool: Sequence[Example], k: int, progress: Progress
) -> tuple[int, list[Example]]:
    """Answer a seeded part of the pool with the plain contract prompt; keep up to k examples the
    model got right (label-balanced). Returns how many were tried and the kept ones."""
    task = search.task
    order = list(pool)
    random.Random(task.seed).shuffle(order)
    tried = order[: max(16, BOOTSTRAP_TRIES * k)]
    plain = PromptPredictor(
        search.name, "optimized-prompt", search.backend, task.contract, lambda _: ()
    )
    scores = search.scores(plain, tried, progress.stage(f"{search.name} bootstrap", len(tried)))
    labels = task.contract.output_format.type == "label"
    return len(tried), bootstrap_choice(tried, scores, k, task.seed, labels)


def _search_judge(task: Task, backend: Backend, cache: ResponseCache) -> ModelJudge:
    """The task's judge for ranking trials, pointwise: a trial's answers have no baseline
    answers beside them to be compared with."""
    assert task.judge is not None
    config = task.judge.model_copy(update={"mode": "pointwise"})
    spec = task.judge.model
    model = backend if spec in (None, backend.spec) else load_backend(spec, task.models)
    return ModelJudge(config, task.contract, model, cache, task.seed)


def rung_scorer(
    search: Search, validation: Sequence[Example], progress: Progress
) -> Callable[[Sequence[Trial], int], list[float]]:
    """Scores trials on the first `size` validation examples; each (trial, example) is asked
    once, so a later rung asks only its new examples."""
    answered: dict[tuple[int, int], str] = {}

    def score(trials: Sequence[Trial], size: int) -> list[float]:
        shown = validation[:size]
        missing = {
            t.number: [i for i in range(size) if (t.number, i) not in answered] for t in trials
        }
        advance = progress.stage(f"{search.name} search {size}", sum(map(len, missing.values())))
        results = []
        for trial in trials:
            predictor = PromptPredictor(
                search.name, "optimized-prompt", search.backend,
                trial.contract(search.task.contract), trial.demos.choose,
            )  # fmt: skip
            todo = missing[trial.number]
            outputs = search.answers(predictor, [validation[i] for i in todo], advance)
            answered.update({(trial.number, i): o for i, o in zip(todo, outputs, strict=True)})
            mine = [answered[(trial.number, i)] for i in range(size)]
            tried = f"{search.name} trial {trial.number}"
            score = metric_value(
                search.task, search.metric, mine, shown, judge=search.judge, candidate=tried
            )
            results.append(round(score, 4))
        return results

    return score


def usage(*spent: Spent) -> dict[str, Any]:
    """Requests, fresh calls, compute seconds and tokens, summed over the given models."""
    return {
        "requests": sum(s.requests for s in spent),
        "calls": sum(s.calls for s in spent),
        "seconds": round(sum(s.seconds for s in spent), 4),
        "input_tokens": sum(s.input_tokens for s in spent),
        "output_tokens": sum(s.output_tokens for s in spent),
    }
