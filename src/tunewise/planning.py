"""`tunewise plan`: time the task's own examples briefly (a few zero-shot answers, a short
warm-up training), then estimate the ladder's steps without measuring any candidate. Both the
answers and the warm-up adapter land in the caches, so the run that follows reuses them."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean

from tunewise.deciding.ladder import MIN_LADDER_TRAINING, WARM_UP_EXAMPLES, WARM_UP_TRAINING
from tunewise.deciding.plan import PlannedStep, Timing, plan
from tunewise.home import tunewise_home
from tunewise.inference.cache import ResponseCache
from tunewise.measuring.candidate import measure_candidate, primary_metric
from tunewise.measuring.progress import Progress, SilentProgress
from tunewise.measuring.selection import ladder_settings, model_for
from tunewise.models.backend import Backend
from tunewise.models.local import LocalModel
from tunewise.models.registry import load_backend
from tunewise.options import RunOptions
from tunewise.run import load_data, with_answer_budget
from tunewise.strategies.catalog import default_candidate, first_in_ladder, ladder_strategies
from tunewise.strategies.prepare import prepare_candidate
from tunewise.task.config import Task
from tunewise.task.data import Dataset, Example


def plan_task(
    task: Task, options: RunOptions, progress: Progress | None = None
) -> tuple[Timing, list[PlannedStep]]:
    """The timing and the planned steps of `tunewise run` on this machine."""
    progress = progress or SilentProgress()
    dataset, test = load_data(task, options)
    task = with_answer_budget(task, dataset.train)
    settings = ladder_settings(task)
    baseline = settings(first_in_ladder("prompting"))
    backend = load_backend(model_for(baseline, task, options), task.models, dtype=options.dtype)
    cache = ResponseCache(tunewise_home() / "cache.sqlite")
    try:
        # One answer first loads the model; the next ones time answering alone.
        for asked in (test[:1], test[1 : WARM_UP_EXAMPLES + 1] or test[:1]):
            timed = measure_candidate(
                task, baseline, name=baseline.strategy, backend=backend, dataset=dataset,
                test=asked, cache=cache, progress=progress,
            )  # fmt: skip
    finally:
        cache.close()
    tokens = timed.usage["input_tokens_per_request"]
    few = settings(next(s.name for s in ladder_strategies("prompting") if s.ladder == "measured"))
    timing = Timing(
        seconds_per_token=timed.compute_seconds_per_request / max(tokens, 1.0),
        zero_shot_tokens=tokens,
        few_shot_tokens=_prompt_tokens(task, few, dataset, asked, backend),
        rag_tokens=_rag_tokens(task, settings),
        train_seconds_per_example=_training_rate(task, dataset, backend, progress),
        train_examples=len(dataset.train),
        test_examples=len(test),
        epochs=getattr(settings(first_in_ladder("fine-tuning")), "epochs", 1),
        redraws=getattr(few, "redraws", 1),
    )
    return timing, plan(timing, task.target.min if task.target else None, primary_metric(task))


def _prompt_tokens(
    task: Task, spec: object, dataset: Dataset, asked: Sequence[Example], backend: Backend
) -> float:
    """Mean prompt tokens of a prompting strategy's requests for the timed inputs."""
    predictor = prepare_candidate(
        task,
        spec,
        train=dataset.train,
        backend=backend,
        name="plan",  # type: ignore[arg-type]
    )
    return fmean(backend.count_tokens(predictor.request(e).messages) for e in asked)


def _rag_tokens(task: Task, settings: object) -> float | None:
    """RAG's prompt: its token budget (passages fill it), None without documents."""
    if task.data.documents is None:
        return None
    return float(settings(first_in_ladder("retrieval")).context_tokens)  # type: ignore[operator]


def _training_rate(
    task: Task, dataset: Dataset, backend: Backend, progress: Progress
) -> float | None:
    """Training seconds per example from the ladder's own warm-up training (the same adapter,
    cached for the run)."""
    if not isinstance(backend, LocalModel) or len(dataset.train) < MIN_LADDER_TRAINING:
        return None
    name = first_in_ladder("fine-tuning")
    warm = default_candidate(name).model_copy(
        update={"max_train_examples": WARM_UP_TRAINING, "epochs": 1}
    )
    prepared = prepare_candidate(
        task, warm, train=dataset.train, backend=backend, name=f"{name} warm-up", progress=progress
    )
    training = prepared.setup.training
    return None if training is None else training.seconds / max(1, training.examples)
