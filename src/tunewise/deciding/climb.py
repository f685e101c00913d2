"""The ladder's walk: each step of the framework estimated, fitted to what is left of the
budget, then measured or reported as not run (ladder.py holds the walk's state and record).

The steps are the framework's families; which strategies each walks, and how, comes from the
strategy records (`ladder`, `trainer`, the `fit_to_budget` hook), never from their names.
"""

from __future__ import annotations

import math

from tunewise.core.catalog import (
    Strategy,
    ladder_strategies,
    names_where,
)
from tunewise.core.specs import CandidateSpec
from tunewise.deciding.decide import MIN_FINE_TUNING_EXAMPLES
from tunewise.deciding.ladder import (
    MIN_LADDER_TRAINING,
    Ladder,
    LadderRecord,
    min_test_examples,
    strategies_for,
    verdict_text,
)
from tunewise.deciding.plan import PASSAGES_FACTOR
from tunewise.deciding.prompting_rounds import measure_prompting, no_room, seconds_per_answer
from tunewise.deciding.room_for_training import gives_way_to_training
from tunewise.deciding.training_steps import TITLES, trained_step, training_estimate
from tunewise.deciding.verdict import Recommendation
from tunewise.inference.predictor import RetrievalUse
from tunewise.measuring.candidate import CandidateResult, primary_metric
from tunewise.measuring.timing import WARM_UP_EXAMPLES
from tunewise.strategies.rag.extractive import answer_mode
from tunewise.task.data import sample_examples, stratify_by_label

# Step 2's reranked variant: ten passages scored per question, about three times an answer's
# compute (python-docs-qa: 2,785 input tokens per request against 862; bench/RESULTS.md).
RERANK_DEPTH = 10
RERANK_COST = 3.0
READER_RECALL = 0.6  # retrieval finds this share of gold documents: the reading is what misses
FAMILY_OF_STEP = {2: "retrieval", 3: "fine-tuning", 4: "hybrid"}


def walk(ladder: Ladder) -> LadderRecord:
    """Steps 1 to 4, each only when the ones before leave the gap open (or a cheaper
    fine-tuned candidate could still win); returns the record of the walk."""
    ladder.started = ladder.clock()
    task = ladder.task
    stopped = _prompting(ladder)
    if task.data.documents is None:
        ladder.record(2, "RAG", "skipped", "the task has no documents (data.documents)")
    elif stopped is None:
        stopped = _rag(ladder)
    if stopped is None:
        stopped = _fine_tuning(ladder)
    if stopped is None:
        stopped = _hybrid(ladder)
    else:
        _not_climbed(ladder, stopped)
    seconds = ladder.clock() - ladder.started
    steps, cuts = ladder.steps, ladder.reductions
    return LadderRecord(ladder.budget, steps, cuts, stopped, seconds, ladder.spent, ladder.forecast)


def _first(family: str) -> Strategy | None:
    return next(iter(ladder_strategies(family)), None)


def _not_climbed(ladder: Ladder, stopped: str) -> None:
    """The steps after an early stop, with the command that measures them anyway."""
    done = {s.step for s in ladder.steps}
    documents = ladder.task.data.documents is not None
    for step, title in TITLES.items():
        first = _first(FAMILY_OF_STEP[step])
        if step in done or (step != 3 and not documents) or first is None:
            continue
        ladder.record(
            step, title, "stopped", stopped, command=ladder.command(strategies_for(first.name))
        )


def _prompting(ladder: Ladder) -> str | None:
    """Step 1: time the baseline on a few examples, fit the test sample to the whole ladder's
    estimate, then measure the prompting strategies, and the budgeted ones when they fit."""
    began = ladder.clock()
    walked = [s for s in ladder_strategies("prompting") if s.ladder != "if-it-fits"]
    baseline = walked[0]
    per_answer = ladder.timed_answers(ladder.settings(baseline.name), baseline.name)
    _fit_test(ladder, per_answer)
    for strategy in walked:
        if strategy is not baseline and (
            gives_way_to_training(ladder, strategy) or no_room(ladder, strategy)
        ):
            continue
        result = measure_prompting(ladder, strategy)
        # Over the whole round, not the first few answers: those carry the first calls' warm-up.
        ladder.per_answer[strategy.name] = seconds_per_answer(result, ladder)
    recommendation = ladder.decision()
    reason = verdict_text(recommendation, 1)
    names = tuple(r.name for r in ladder.results)
    ladder.record(1, "prompting", "run", reason, candidates=names, seconds=ladder.clock() - began)
    searched = False
    if recommendation.verdict != "meets-target":
        for strategy in ladder_strategies("prompting"):
            if strategy.ladder == "if-it-fits":
                searched |= _if_it_fits(ladder, strategy, per_answer=ladder.per_answer[names[-1]])
    return _stop_after(ladder, ladder.decision() if searched else recommendation, 1)


def _fit_test(ladder: Ladder, per_answer: float) -> None:
    """Shrink the test sample when the ladder's answers alone would take over half the budget:
    every candidate answers every test example."""
    if ladder.budget is None:
        return
    task = ladder.task
    answering = 3 + (
        2 if task.data.documents is not None else 0
    )  # zs, fs (+redraws), lora, rag, hybrid
    per_example = per_answer * (answering + 1)
    share = 0.5 * ladder.left()
    n = len(ladder.test)
    if n * per_example <= share:
        return
    fitted = max(min_test_examples(), math.floor(share / per_example))
    if fitted >= n:
        return
    stratify = stratify_by_label(task.contract.output_format)
    ladder.test = sample_examples(ladder.test, fitted, task.seed, stratify)
    ladder.reduce(1, "all", "test_examples", n, fitted)


def _if_it_fits(ladder: Ladder, strategy: Strategy, per_answer: float) -> bool:
    """A budgeted prompting strategy (the prompt search), when its `fit_to_budget` hook finds
    room next to a reserve for step 3; with the settings the hook shrank."""
    fit = strategy.hook("fit_to_budget")
    if fit is None:
        return False
    spec = ladder.settings(strategy.name)
    room = None if ladder.budget is None else ladder.left() - _fine_tuning_reserve(ladder)
    fitted = fit(
        spec, seconds=room, per_answer=per_answer, train_examples=ladder.train_examples,
        test_examples=len(ladder.test),
    )  # fmt: skip
    title = strategy.name.replace("-", " ")
    if fitted.spec is None:
        if fitted.why_not:
            ladder.record(
                1, title, "not run: budget", fitted.why_not,
                estimated_seconds=fitted.estimated_seconds,
                command=ladder.command(strategies_for(strategy.name)),
            )  # fmt: skip
        return False
    for setting, before, after in fitted.reductions:
        ladder.reduce(1, strategy.name, setting, before, after)
    began = ladder.clock()
    ladder.run(fitted.spec, strategy.name)
    reason = verdict_text(ladder.decision(), 1)
    seconds = ladder.clock() - began
    candidates = (strategy.name,)
    ladder.record(1, title, "run", reason, candidates=candidates, seconds=seconds)
    return True


def _fine_tuning_reserve(ladder: Ladder) -> float:
    """What step 3 needs: one epoch on up to 500 examples (the framework's gate), its answers."""
    if not ladder.trainable or ladder.train_examples < MIN_LADDER_TRAINING:
        return 0.0
    per_answer = ladder.per_answer.get(ladder.baseline, 0.0)
    examples = min(ladder.train_examples, MIN_FINE_TUNING_EXAMPLES)
    return training_estimate(ladder, examples, 1) + len(ladder.test) * per_answer


def _stop_after(ladder: Ladder, recommendation: Recommendation, step: int) -> str | None:
    """Why the ladder stops after a step that met the target, or None to climb on: it climbs
    only when fine-tuning could still win on cost (a shorter prompt than the winner's that
    would pay back its training within the horizon)."""
    if recommendation.verdict != "meets-target":
        return None
    winner = next(r for r in ladder.results if r.name == recommendation.candidate)
    if ladder.tunes_remotely and not ladder.trainable:
        return f"step {step} meets the target, so no fine-tuning job (paid) is started"
    if not ladder.trainable or ladder.train_examples < MIN_LADDER_TRAINING:
        return f"step {step} meets the target, and fine-tuning cannot run here"
    baseline = next(
        (r for r in ladder.results if r.strategy == ladder.baseline and r.measured), None
    )
    saved = winner.compute_seconds_per_request - (
        baseline.compute_seconds_per_request if baseline else 0.0
    )
    usage = ladder.task.usage
    requests = usage.requests_per_month * usage.horizon_months
    training = training_estimate(ladder, min(ladder.train_examples, MIN_FINE_TUNING_EXAMPLES), 1)
    if saved <= 0 or saved * requests < training:
        return (
            f"step {step} meets the target, and a fine-tuned model cannot win on cost: it would "
            f"save {max(saved, 0.0) * 1000:.0f} ms of compute per request, "
            f"{max(saved, 0.0) * requests:.0f} s over {usage.horizon_months} months at "
            f"{usage.requests_per_month:,} requests/month, against about {training:.0f} s of "
            "training"
        )
    return None


def _rag(ladder: Ladder) -> str | None:
    """Step 2: prompting with retrieved passages (the first retrieval strategy), when the task
    has documents; then its extractive and reranked variants where they may help."""
    strategy = _first("retrieval")
    if strategy is None:
        return None
    began = ladder.clock()
    name = strategy.name
    spec = ladder.settings(name)
    planned = _planned_rag_timing(ladder)
    if not ladder.fits(planned):  # even timing RAG's answers would overrun the budget
        ladder.record(
            2, "RAG", "not run: budget",
            f"timing RAG's first answers needs about {planned:.0f} s (the plan's estimate)",
            estimated_seconds=planned, command=ladder.command(strategies_for(name)),
        )  # fmt: skip
        return None
    per_answer = ladder.timed_answers(spec, name)
    estimate = len(ladder.test) * per_answer
    if not ladder.fits(estimate):
        ladder.record(
            2, "RAG", "not run: budget", f"RAG's answers need about {estimate:.0f} s",
            estimated_seconds=estimate, command=ladder.command(strategies_for(name)),
        )  # fmt: skip
        return None
    measured = ladder.run(spec, name)
    names: tuple[str, ...] = (name,)
    # Answers mostly verbatim in the documents: copying spans is measured beside generating.
    use = measured.retrieval
    share = use.verbatim_answers if use else 0.0
    copies = answer_mode(ladder.task, "auto", share, ladder.trainable) == "extractive"
    if copies and use is not None and use.answer == "free" and ladder.fits(estimate):
        ladder.run(spec.model_copy(update={"answer": "extractive"}), f"{name}-extractive")
        names = (name, f"{name}-extractive")
    names += _reranked(ladder, spec, names, estimate)
    recommendation = ladder.decision()
    reason = verdict_text(recommendation, 2)
    ladder.record(
        2,
        "RAG",
        "run",
        reason,
        candidates=names,
        seconds=ladder.clock() - began,
        estimated_seconds=estimate,
    )
    return _stop_after(ladder, recommendation, 2)


def _planned_rag_timing(ladder: Ladder) -> float:
    """The plan's estimate of the answers that time RAG (0 where the run was not planned)."""
    timing = ladder.timing
    if timing is None or timing.rag_tokens is None:
        return 0.0
    return timing.answers(timing.rag_tokens, min(WARM_UP_EXAMPLES, len(ladder.test)))


def _reranked(
    ladder: Ladder, spec: CandidateSpec, names: tuple[str, ...], estimate: float
) -> tuple[str, ...]:
    """The better RAG variant again with its passages reranked by the model, when the model
    gives log-probabilities (a local one), the task did not set `rerank`, and retrieval left
    room: the gold document was not always ranked first."""
    ran = [r for r in ladder.results if r.measured and r.name in names]
    if not ran or not ladder.trainable or getattr(spec, "rerank", 0):
        return ()
    best = max(ran, key=lambda r: r.metrics[primary_metric(ladder.task)].value)
    first = best.metrics.get("recall@1")
    if (first is not None and first.value >= 1.0) or not ladder.fits(estimate * RERANK_COST):
        return ()
    better = ladder.specs[ladder.results.index(best)]
    ladder.run(better.model_copy(update={"rerank": RERANK_DEPTH}), f"{best.name}-rerank")
    return (f"{best.name}-rerank",)


def _fine_tuning(ladder: Ladder) -> str | None:
    """Step 3: each fine-tuning method the ladder walks, on the training split, fitted to the
    budget; stops at the first that meets the target."""
    n = ladder.train_examples
    methods = [s for s in ladder_strategies("fine-tuning") if ladder.can_train(s)]
    if not methods:
        ladder.record(
            3,
            "fine-tuning",
            "skipped",
            "the model is not a local transformers model, so it cannot be fine-tuned here, nor "
            "an endpoint with fine_tuning: true, whose service could fine-tune it",
        )
        return None
    if n < MIN_LADDER_TRAINING:
        ladder.record(
            3,
            "fine-tuning",
            "skipped",
            f"{n} training examples (< {MIN_LADDER_TRAINING}) are too few to train on",
        )
        return None
    gate = (
        f"{n} training examples (>= {MIN_FINE_TUNING_EXAMPLES}, the framework's gate)"
        if n >= MIN_FINE_TUNING_EXAMPLES
        else f"measured below the framework's {MIN_FINE_TUNING_EXAMPLES}-example gate "
        f"({n} examples) because the budget allows"
    )
    for strategy in methods:
        stopped = trained_step(ladder, 3, strategy, gate)
        if stopped is not None:
            return stopped
    return None


def _hybrid(ladder: Ladder) -> str | None:
    """Step 4: the hybrid methods (an adapter trained with retrieved passages), when retrieval
    and fine-tuning each beat prompting; or, on a task whose retrieval finds the answer's
    document yet RAG's answers miss, as the reader that closed-book fine-tuning cannot be."""
    if ladder.task.data.documents is None:
        ladder.record(4, "hybrid", "skipped", "the task has no documents (data.documents)")
        return None
    rags = ladder.measured(names_where(family="retrieval"))
    tuned = ladder.measured(names_where(family="fine-tuning"))
    metric = primary_metric(ladder.task)
    rag = max(rags, key=lambda r: r.metrics[metric].value) if rags else None
    gate = _reader_gate(rag) if rag is not None else None
    if gate is None and (rag is None or not tuned):
        ladder.record(4, "hybrid", "skipped", "needs both RAG and LoRA measured first")
        return None
    if gate is None:
        assert rag is not None
        prompting = ladder.measured(names_where(family="prompting"))
        best = max((r.metrics[metric].value for r in prompting), default=-math.inf)
        helps = [r.metrics[metric].value > best for r in (rag, tuned[0])]
        if not all(helps):
            which = "RAG" if not helps[0] else "LoRA"
            ladder.record(
                4, "hybrid", "skipped",
                f"{which} does not beat prompting, so combining it cannot be justified",
            )  # fmt: skip
            return None
        gate = "RAG and LoRA each beat prompting"
    assert rag is not None
    for strategy in (s for s in ladder_strategies("hybrid") if ladder.can_train(s)):
        # It answers and ranks the way the better RAG candidate did (unless the task says).
        spec = ladder.settings(strategy.name)
        use = rag.retrieval or RetrievalUse()
        inherited = {"answer": use.answer, "rerank": use.rerank}
        update = {k: v for k, v in inherited.items() if k not in spec.model_fields_set}
        chosen = spec.model_copy(update=update)
        stopped = trained_step(ladder, 4, strategy, gate, chosen, _passages_factor(ladder, rag))
        if stopped is not None:
            return stopped
    return None


def _passages_factor(ladder: Ladder, rag: CandidateResult) -> float:
    """What a hybrid's answer and training example cost against the short prompt's: the RAG
    candidate's measured compute per answer against the baseline's (passages lengthen both),
    at least PASSAGES_FACTOR."""
    baseline = ladder.per_answer.get(ladder.baseline, 0.0)
    measured = rag.compute_seconds_per_request / baseline if baseline > 0 else 0.0
    return max(PASSAGES_FACTOR, measured)


def _reader_gate(rag: CandidateResult) -> str | None:
    """Why a reader trained on the retrieving prompts is step 4's candidate: retrieval puts the
    gold document among the passages for most questions (recall@5 >= READER_RECALL), so what
    misses is reading them; None without gold document ids, or when retrieval misses too."""
    found = rag.metrics.get("recall@5")
    if found is None or found.value < READER_RECALL:
        return None
    return (
        f"retrieval finds the gold document within 5 passages for {found.value:.0%} of questions "
        f"(recall@5, n={found.n}), yet {rag.name}'s answers miss: a model trained to read them"
    )
