"""What every step of a run measures with: the task, its data, the backends (each loaded once),
the response cache, the documents and the judge; and how one candidate is measured with them."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

from tunewise.core.catalog import first_in_ladder, ladder_strategies
from tunewise.core.progress import Progress
from tunewise.core.specs import CandidateSpec, FineTuningOptions
from tunewise.deciding.ladder import MIN_LADDER_TRAINING, LadderRecord
from tunewise.deciding.plan import (
    SERVICE_EPOCHS,
    LadderPlan,
    ShowsPlan,
    ladder_plan,
    smallest_training_fits,
    warm_up_size,
)
from tunewise.inference.cache import ResponseCache
from tunewise.inference.judge import ModelJudge
from tunewise.measuring.candidate import CandidateResult, measure_candidate
from tunewise.measuring.learning_curve import CurveFit
from tunewise.measuring.selection import model_for
from tunewise.measuring.timing import (
    time_answers,
    timed_pair,
    untimed_training_rate,
    warm_up_spec,
    with_reading_rate,
    with_training_rate,
)
from tunewise.models.backend import Backend
from tunewise.models.local import LocalModel
from tunewise.models.registry import load_backend
from tunewise.options import RunOptions
from tunewise.retrieval.knowledge import Knowledge
from tunewise.strategies.prepare import prepare_candidate
from tunewise.task.config import Task
from tunewise.task.data import Dataset, Example


@dataclass(frozen=True)
class Backends:
    """The run's model backends, each loaded once, on first use."""

    task: Task
    options: RunOptions
    loaded: dict[str, Backend] = field(default_factory=dict)

    def named(self, model: str) -> Backend:
        if model not in self.loaded:
            self.loaded[model] = load_backend(model, self.task.models, dtype=self.options.dtype)
        return self.loaded[model]

    def for_spec(self, spec: CandidateSpec) -> Backend:
        return self.named(model_for(spec, self.task, self.options))


@dataclass(frozen=True)
class RunContext:
    """What every step of a run measures with."""

    task: Task
    options: RunOptions
    dataset: Dataset
    test: list[Example]  # the examples every candidate is asked (the ladder may fit them)
    backends: Backends
    cache: ResponseCache
    progress: Progress
    knowledge: Knowledge | None
    judge: ModelJudge | None


@dataclass(frozen=True)
class Measured:
    """The candidates a run measured, in order, and the ladder's walk when it climbed."""

    specs: list[CandidateSpec]
    names: list[str]
    results: list[CandidateResult]
    test: list[Example]
    ladder: LadderRecord | None = None
    curve: CurveFit | None = None  # the ladder's, fitted when it trained on a subsample


def judge_model(task: Task, options: RunOptions) -> str:
    """The model that judges: the `judge:` block's, else --model, else the task's."""
    assert task.judge is not None
    return task.judge.model or options.model or task.model


def judge_for(
    task: Task, options: RunOptions, backends: Backends, cache: ResponseCache
) -> ModelJudge | None:
    """The model judge the task's `judge:` block asks for, if any."""
    if task.judge is None:
        return None
    backend = backends.named(judge_model(task, options))
    return ModelJudge(task.judge, task.contract, backend, cache, task.seed)


def measure(
    run: RunContext, spec: CandidateSpec, name: str, examples: Sequence[Example] | None = None
) -> CandidateResult:
    """One candidate measured on the run's test examples (or the ones given)."""
    asked = list(run.test if examples is None else examples)
    return measure_candidate(
        run.task, spec, name=name, backend=run.backends.for_spec(spec), dataset=run.dataset,
        test=asked, cache=run.cache, progress=run.progress, knowledge=run.knowledge,
        repeats=run.options.repeats, judge=run.judge,
    )  # fmt: skip


def warm_up_training(run: RunContext, spec: FineTuningOptions, name: str) -> tuple[float, int]:
    """A short training's seconds and examples (its adapter is cached like any)."""
    prepared = prepare_candidate(
        run.task, spec, train=run.dataset.train, backend=run.backends.for_spec(spec), name=name,
        progress=run.progress,
    )  # fmt: skip
    training = prepared.setup.training
    assert training is not None  # spec is a fine-tuning candidate: it trained
    return training.seconds, training.examples * spec.epochs


MIN_PLAN_WARM_UP = 8  # a smaller warm-up training times its setup more than its steps
WARM_UP_SETUP_SECONDS = 8.0  # a warm-up's model copy, tokenizing and saving, beside its steps


def trains_locally(run: RunContext, settings: Callable[[str], CandidateSpec]) -> bool:
    """Whether the ladder's fine-tuning method has a local model to train."""
    trainer = run.backends.for_spec(settings(first_in_ladder("fine-tuning")))
    return isinstance(trainer, LocalModel)


def trains_here(run: RunContext, settings: Callable[[str], CandidateSpec]) -> bool:
    """Whether the ladder's fine-tuning steps train on this machine: a local model, and
    enough training examples for a ladder to fine-tune."""
    return trains_locally(run, settings) and len(run.dataset.train) >= MIN_LADDER_TRAINING


def tunes_remotely(task: Task, options: RunOptions) -> bool:
    """Whether the run's model is a `models:` endpoint whose service fine-tunes."""
    endpoint = task.models.get(options.model or task.model)
    return endpoint is not None and endpoint.fine_tuning


def service_epochs(run: RunContext, settings: Callable[[str], CandidateSpec]) -> int | None:
    """The epochs a fine-tuning service's job would train (its "auto" priced as
    SERVICE_EPOCHS); None where the run's model does not fine-tune on a service."""
    if not tunes_remotely(run.task, run.options):
        return None
    hosted = next((s for s in ladder_strategies("fine-tuning") if s.trains_remotely), None)
    epochs = getattr(settings(hosted.name), "n_epochs", "auto") if hosted else "auto"
    return epochs if isinstance(epochs, int) else SERVICE_EPOCHS


def plan_ladder(
    run: RunContext, settings: Callable[[str], CandidateSpec], within: float | None = None
) -> LadderPlan:
    """Time the task's own examples (cached for the ladder), plan its steps, and show the plan
    before the ladder spends anything. `tunewise plan` and `tunewise run` both plan here, so
    the run reuses the plan's answers and warm-up adapter.

    `within`: seconds the timing may take (`tunewise plan`'s promise to answer quickly): the
    wide batch and the warm-up shrink to fit, and a warm-up under MIN_PLAN_WARM_UP examples, or
    one the budget could not afford, is not trained (training is then priced at about three
    forward passes an example, and the plan still shows the training steps)."""
    deadline = None if within is None else time.perf_counter() + within

    def warm_up(strategy: str) -> tuple[float, int]:
        warm = warm_up_spec(settings(strategy), size)
        return warm_up_training(run, warm, f"{strategy} warm-up")

    baseline = settings(first_in_ladder("prompting"))
    answering = run.backends.for_spec(baseline)
    timing = time_answers(
        run.task, run.dataset, run.test, settings,
        backend=answering, measure=partial(measure, run), deadline=deadline,
    )  # fmt: skip
    here = trains_here(run, settings)
    # Training is first priced from reading a prompt, never from generating an answer; only a
    # budget or `tunewise plan`'s deadline uses that price (else the warm-up trains at 40).
    if here and (run.options.budget is not None or deadline is not None):
        pair = timed_pair(run.test)
        timing = with_reading_rate(timing, run.task, baseline, run.dataset, pair, answering)
    size = warm_up_size(timing, run.options.budget)
    fits = smallest_training_fits(timing, run.options.budget)
    if here and (fits or deadline is not None):
        if deadline is not None:
            left = deadline - time.perf_counter() - WARM_UP_SETUP_SECONDS
            size = min(size, int(left / max(untimed_training_rate(timing), 1e-9)))
        if fits and size >= MIN_PLAN_WARM_UP:
            timing = with_training_rate(timing, warm_up, size)
        elif deadline is not None:  # `tunewise plan` still shows steps 3 and 4, priced untimed
            timing = replace(
                timing, train_seconds_per_example=untimed_training_rate(timing), warm_up_examples=0
            )
    model = model_for(baseline, run.task, run.options)
    planned = ladder_plan(run.task, timing, model, service_epochs(run, settings))
    if isinstance(run.progress, ShowsPlan):
        run.progress.planned(planned, run.options.budget)
    return planned
