"""`tunewise plan`: time the task's own examples briefly (a few zero-shot answers, a short
warm-up training), then estimate the ladder's steps without measuring any candidate. Both the
answers and the warm-up adapter land in the caches, so the run that follows reuses them."""

from __future__ import annotations

from collections.abc import Sequence

from tunewise.core.catalog import first_in_ladder
from tunewise.core.progress import Progress, SilentProgress
from tunewise.core.specs import CandidateSpec
from tunewise.deciding.ladder import MIN_LADDER_TRAINING
from tunewise.deciding.plan import LadderPlan, ladder_plan
from tunewise.home import tunewise_home
from tunewise.inference.cache import ResponseCache
from tunewise.measuring.candidate import CandidateResult, measure_candidate
from tunewise.measuring.selection import ladder_settings, model_for
from tunewise.measuring.timing import time_answers, warm_up_spec, with_training_rate
from tunewise.models.local import LocalModel
from tunewise.models.registry import load_backend
from tunewise.options import RunOptions
from tunewise.run import load_data, with_answer_budget
from tunewise.strategies.prepare import prepare_candidate
from tunewise.task.config import Task
from tunewise.task.data import Example


def plan_task(task: Task, options: RunOptions, progress: Progress | None = None) -> LadderPlan:
    """The timing and the planned steps of `tunewise run` on this machine."""
    progress = progress or SilentProgress()
    dataset, test = load_data(task, options)
    task = with_answer_budget(task, dataset.train)
    settings = ladder_settings(task)
    baseline = settings(first_in_ladder("prompting"))
    backend = load_backend(model_for(baseline, task, options), task.models, dtype=options.dtype)
    cache = ResponseCache(tunewise_home() / "cache.sqlite")

    def measure(spec: CandidateSpec, name: str, asked: Sequence[Example]) -> CandidateResult:
        return measure_candidate(
            task, spec, name=name, backend=backend, dataset=dataset, test=list(asked),
            cache=cache, progress=progress,
        )  # fmt: skip

    def warm_up(strategy: str) -> tuple[float, int]:
        """The ladder's own warm-up training (the same adapter, cached for the run)."""
        prepared = prepare_candidate(
            task, warm_up_spec(settings(strategy)), train=dataset.train, backend=backend,
            name=f"{strategy} warm-up", progress=progress,
        )  # fmt: skip
        training = prepared.setup.training
        return (0.0, 0) if training is None else (training.seconds, training.examples)

    try:
        timing = time_answers(task, dataset, test, settings, backend=backend, measure=measure)
        if isinstance(backend, LocalModel) and len(dataset.train) >= MIN_LADDER_TRAINING:
            timing = with_training_rate(timing, warm_up)
    finally:
        cache.close()
    return ladder_plan(task, timing)
