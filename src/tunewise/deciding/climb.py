"""The ladder's walk: each step of the framework estimated, fitted to what is left of the
budget, then measured or reported as not run (ladder.py holds the walk's state and record)."""

from __future__ import annotations

import math

from tunewise.deciding.decide import MIN_FINE_TUNING_EXAMPLES
from tunewise.deciding.ladder import (
    FIXED_SECONDS,
    MIN_LADDER_TRAINING,
    MIN_TRAIN_SUBSAMPLE,
    MIN_TRIALS,
    WARM_UP_TRAINING,
    Ladder,
    LadderRecord,
    min_test_examples,
)
from tunewise.deciding.verdict import Recommendation
from tunewise.measuring.candidate import CandidateResult, primary_metric
from tunewise.strategies.catalog import names_where
from tunewise.strategies.extractive import answer_mode
from tunewise.strategies.specs import (
    CandidateSpec,
    FineTuningOptions,
    LoraCandidate,
    OptimizedPromptCandidate,
)
from tunewise.task.data import sample_examples, stratify_by_label

# Step 2's reranked variant: ten passages scored per question, about three times an answer's
# compute (python-docs-qa: 2,785 input tokens per request against 862; bench/RESULTS.md).
RERANK_DEPTH = 10
RERANK_COST = 3.0


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
    return LadderRecord(ladder.budget, steps, cuts, stopped, seconds, ladder.spent)


STEPS = {
    2: ("RAG", "zero-shot,few-shot,rag"),
    3: ("fine-tuning", "zero-shot,few-shot,lora"),
    4: ("hybrid", "zero-shot,few-shot,rag,lora,hybrid"),
}


def _not_climbed(ladder: Ladder, stopped: str) -> None:
    """The steps after an early stop, with the command that measures them anyway."""
    done = {s.step for s in ladder.steps}
    documents = ladder.task.data.documents is not None
    for step, (title, strategies) in STEPS.items():
        if step in done or (step != 3 and not documents):
            continue
        ladder.record(step, title, "stopped", stopped, command=ladder.command(strategies))


def _prompting(ladder: Ladder) -> str | None:
    """Step 1: time zero-shot on a few examples, fit the test sample to the whole ladder's
    estimate, then measure zero-shot, few-shot and (when it fits) optimized-prompt."""
    began = ladder.clock()
    zero, few = ladder.settings("zero-shot"), ladder.settings("few-shot")
    per_answer = ladder.timed_answers(zero, "zero-shot")
    _fit_test(ladder, per_answer)
    ladder.run(zero, "zero-shot")
    fs = ladder.run(few, "few-shot")
    ladder.per_answer["few-shot"] = _seconds_per_answer(fs, ladder)
    recommendation = ladder.decision()
    reason = _verdict_text(recommendation, 1)
    names = ("zero-shot", "few-shot")
    ladder.record(1, "prompting", "run", reason, candidates=names, seconds=ladder.clock() - began)
    if recommendation.verdict != "meets-target" and _optimized_prompt(ladder):
        recommendation = ladder.decision()
    return _stop_after(ladder, recommendation, 1)


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


def _seconds_per_answer(result: CandidateResult, ladder: Ladder) -> float:
    """Measured compute per answer, else the zero-shot warm-up's figure."""
    if result.measured and result.predictions:
        return max(result.compute_seconds_per_request, 1e-4)
    return ladder.per_answer.get("zero-shot", 0.0)


def _optimized_prompt(ladder: Ladder) -> bool:
    """optimized-prompt, the fair prompting rival, when its search fits next to a reserve for
    step 3; fewer trials when only some fit."""
    spec = ladder.settings("optimized-prompt")
    assert isinstance(spec, OptimizedPromptCandidate)
    validation = min(spec.validation_examples, ladder.train_examples // 2)
    per_answer = ladder.per_answer.get("few-shot", 0.0)
    if validation < 2:
        return False
    # Successive halving asks about half of trials x validation answers, then the test set.
    per_trial = 0.5 * validation * per_answer
    answering = len(ladder.test) * per_answer
    reserve = _fine_tuning_reserve(ladder)
    room = ladder.left() - reserve - answering
    trials = (
        spec.trials
        if ladder.budget is None
        else min(spec.trials, math.floor(room / max(per_trial, 1e-9)))
    )
    estimate = spec.trials * per_trial + answering
    if trials < MIN_TRIALS:
        ladder.record(
            1,
            "optimized prompt",
            "not run: budget",
            f"the prompt search needs about {estimate:.0f} s and leaves too little for step 3",
            estimated_seconds=estimate,
            command=ladder.command("zero-shot,few-shot,optimized-prompt"),
        )
        return False
    if trials < spec.trials:
        ladder.reduce(1, "optimized-prompt", "trials", spec.trials, trials)
        spec = spec.model_copy(update={"trials": trials})
    began = ladder.clock()
    ladder.run(spec, "optimized-prompt")
    reason = _verdict_text(ladder.decision(), 1)
    seconds = ladder.clock() - began
    candidates = ("optimized-prompt",)
    ladder.record(1, "optimized prompt", "run", reason, candidates=candidates, seconds=seconds)
    return True


def _fine_tuning_reserve(ladder: Ladder) -> float:
    """What step 3 needs: one epoch on up to 500 examples (the framework's gate), its answers."""
    if not ladder.trainable or ladder.train_examples < MIN_LADDER_TRAINING:
        return 0.0
    per_answer = ladder.per_answer.get("zero-shot", 0.0)
    examples = min(ladder.train_examples, MIN_FINE_TUNING_EXAMPLES)
    return _training_estimate(ladder, examples, 1) + len(ladder.test) * per_answer


def _verdict_text(recommendation: Recommendation, step: int) -> str:
    if recommendation.verdict == "meets-target" and recommendation.step <= step:
        return f"{recommendation.candidate} meets the target"
    best = recommendation.alternatives[0] if recommendation.alternatives else "nothing measured"
    return f"the target is missed; best so far {best}"


def _stop_after(ladder: Ladder, recommendation: Recommendation, step: int) -> str | None:
    """Why the ladder stops after a step that met the target, or None to climb on: it climbs
    only when fine-tuning could still win on cost (a shorter prompt than the winner's that
    would pay back its training within the horizon)."""
    if recommendation.verdict != "meets-target":
        return None
    winner = next(r for r in ladder.results if r.name == recommendation.candidate)
    if not ladder.trainable or ladder.train_examples < MIN_LADDER_TRAINING:
        return f"step {step} meets the target, and fine-tuning cannot run here"
    zero = next((r for r in ladder.results if r.strategy == "zero-shot" and r.measured), None)
    saved = winner.compute_seconds_per_request - (zero.compute_seconds_per_request if zero else 0.0)
    usage = ladder.task.usage
    requests = usage.requests_per_month * usage.horizon_months
    training = _training_estimate(ladder, min(ladder.train_examples, MIN_FINE_TUNING_EXAMPLES), 1)
    if saved <= 0 or saved * requests < training:
        return (
            f"step {step} meets the target, and a fine-tuned model cannot win on cost: it would "
            f"save {max(saved, 0.0) * 1000:.0f} ms of compute per request, "
            f"{max(saved, 0.0) * requests:.0f} s over {usage.horizon_months} months at "
            f"{usage.requests_per_month:,} requests/month, against about {training:.0f} s of "
            "training"
        )
    return None


def _training_estimate(ladder: Ladder, examples: int, epochs: int, factor: float = 1.0) -> float:
    """Before any warm-up training: three forward passes' worth per example and epoch."""
    per_example = ladder.per_answer.get("train", 3 * ladder.per_answer.get("zero-shot", 0.0))
    return examples * epochs * per_example * factor + FIXED_SECONDS


def _rag(ladder: Ladder) -> str | None:
    """Step 2: prompting with retrieved passages, when the task has documents."""
    began = ladder.clock()
    spec = ladder.settings("rag")
    per_answer = ladder.timed_answers(spec, "rag")
    estimate = len(ladder.test) * per_answer
    if not ladder.fits(estimate):
        ladder.record(
            2, "RAG", "not run: budget", f"RAG's answers need about {estimate:.0f} s",
            estimated_seconds=estimate, command=ladder.command(STEPS[2][1]),
        )  # fmt: skip
        return None
    measured = ladder.run(spec, "rag")
    names: tuple[str, ...] = ("rag",)
    # Answers mostly verbatim in the documents: copying spans is measured beside generating.
    share = float(measured.params.get("verbatim_answers", 0.0))
    copies = answer_mode(ladder.task, "auto", share, ladder.trainable) == "extractive"
    if copies and measured.params.get("answer") == "free" and ladder.fits(estimate):
        ladder.run(spec.model_copy(update={"answer": "extractive"}), "rag-extractive")
        names = ("rag", "rag-extractive")
    names += _reranked(ladder, spec, names, estimate)
    recommendation = ladder.decision()
    reason = _verdict_text(recommendation, 2)
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
    """Step 3: LoRA on the training split, fitted to the budget."""
    n = ladder.train_examples
    if not ladder.trainable:
        ladder.record(
            3,
            "fine-tuning",
            "skipped",
            "the model is not a local transformers model, so it cannot be fine-tuned here",
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
    spec = ladder.settings("lora")
    assert isinstance(spec, LoraCandidate)
    return _train_and_measure(ladder, 3, "fine-tuning", spec, "lora", STEPS[3][1], gate)


def _hybrid(ladder: Ladder) -> str | None:
    """Step 4: LoRA trained with retrieved passages, when RAG and LoRA each beat prompting."""
    if ladder.task.data.documents is None:
        ladder.record(4, "hybrid", "skipped", "the task has no documents (data.documents)")
        return None
    rags, tuned = ladder.measured(frozenset({"rag"})), ladder.measured(frozenset({"lora"}))
    if not rags or not tuned:
        ladder.record(4, "hybrid", "skipped", "needs both RAG and LoRA measured first")
        return None
    metric = primary_metric(ladder.task)
    rag = [max(rags, key=lambda r: r.metrics[metric].value)]  # the better way of answering
    prompting = ladder.measured(names_where(family="prompting"))
    best = max((r.metrics[metric].value for r in prompting), default=-math.inf)
    helps = [r.metrics[metric].value > best for r in (rag[0], tuned[0])]
    if not all(helps):
        which = "RAG" if not helps[0] else "LoRA"
        ladder.record(
            4,
            "hybrid",
            "skipped",
            f"{which} does not beat prompting, so combining it cannot be justified",
        )
        return None
    # The hybrid answers and ranks the way the better RAG candidate did (unless the task says
    # otherwise).
    spec = ladder.settings("hybrid")
    inherited = {
        "answer": rag[0].params.get("answer", "free"),
        "rerank": rag[0].params.get("rerank", 0),
    }
    update = {k: v for k, v in inherited.items() if k not in spec.model_fields_set}
    spec = spec.model_copy(update=update)
    return _train_and_measure(
        ladder, 4, "hybrid", spec, "hybrid",  # type: ignore[arg-type]
        STEPS[4][1], "RAG and LoRA each beat prompting", factor=2.0,
    )  # fmt: skip


def _train_and_measure(
    ladder: Ladder,
    step: int,
    title: str,
    spec: FineTuningOptions,
    name: str,
    strategies: str,
    gate: str,
    factor: float = 1.0,
) -> str | None:
    """Time a short warm-up training, fit epochs and a subsample to the budget, then measure;
    or report the step as not run with its estimate and command. `factor`: the step's prompt
    length against the short prompt's (hybrid trains and answers with passages)."""
    began = ladder.clock()
    n = min(ladder.train_examples, spec.max_train_examples or ladder.train_examples)
    answering = len(ladder.test) * ladder.per_answer.get("zero-shot", 0.0) * factor

    def left_out(estimate: float) -> None:
        why = f"{gate}; about {estimate:.0f} s needed, {max(ladder.left(), 0):.0f} s left"
        command = ladder.command(strategies)
        ladder.record(
            step, title, "not run: budget", why, estimated_seconds=estimate, command=command
        )

    if ladder.budget is not None and "train" not in ladder.per_answer:
        smallest = _training_estimate(ladder, min(MIN_TRAIN_SUBSAMPLE, n), 1, factor) + answering
        if not ladder.fits(smallest):
            left_out(_training_estimate(ladder, n, spec.epochs, factor) + answering)
            return None
        warm = LoraCandidate(strategy="lora", max_train_examples=WARM_UP_TRAINING, epochs=1)
        trained, examples = ladder.train_seconds(warm, f"{name} warm-up")
        ladder.spent += trained
        ladder.per_answer["train"] = trained / max(1, examples)
    epochs, examples = spec.epochs, n
    full = _training_estimate(ladder, n, epochs, factor) + answering
    if not ladder.fits(full):
        epochs = 1
        room = ladder.left() - FIXED_SECONDS - answering
        per_example = max(_training_estimate(ladder, 1, 1, factor) - FIXED_SECONDS, 1e-9)
        examples = min(n, math.floor(room / per_example / 10) * 10)
        if examples < min(MIN_TRAIN_SUBSAMPLE, n):
            left_out(full)
            return None
        if spec.epochs > 1:
            ladder.reduce(step, name, "epochs", spec.epochs, 1)
        if examples < n:
            ladder.reduce(step, name, "max_train_examples", n, examples)
    subsample = examples if examples < n else spec.max_train_examples
    spec = spec.model_copy(update={"epochs": epochs, "max_train_examples": subsample})
    estimate = _training_estimate(ladder, examples, epochs, factor) + answering
    result = ladder.run(spec, name)
    recommendation = ladder.decision()
    reason = f"{gate}; " + (
        _verdict_text(recommendation, step) if result.measured else str(result.skipped)
    )
    seconds = ladder.clock() - began
    ladder.record(
        step, title, "run", reason, candidates=(name,), seconds=seconds, estimated_seconds=estimate
    )
    if recommendation.verdict == "meets-target":
        cheaper = ", and the hybrid (the same adapter with a longer prompt) cannot cost less"
        return f"step {recommendation.step} meets the target" + (cheaper if step == 3 else "")
    return None
