"""`tunewise run` as a recipe: load, prepare, predict, evaluate, decide (results.py writes)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from tunewise.checks import check_task
from tunewise.core.catalog import names_where
from tunewise.core.progress import Progress, SilentProgress
from tunewise.core.specs import CandidateSpec
from tunewise.core.version import __version__
from tunewise.deciding.climb import walk
from tunewise.deciding.from_results import decide_from, price_list
from tunewise.deciding.ladder import Ladder, LadderRecord
from tunewise.deciding.next_step import next_step
from tunewise.deciding.plan import (
    checked,
)
from tunewise.deciding.verdict import NextStep, Recommendation
from tunewise.errors import DataError, TunewiseError
from tunewise.home import tunewise_home
from tunewise.inference.cache import ResponseCache
from tunewise.inference.judge import run_judgement
from tunewise.measuring.across_datasets import PRIMARY, DatasetResult, dataset_table, disagreements
from tunewise.measuring.answer_scores import answer_scores
from tunewise.measuring.candidate import CandidateResult, measure_candidate, primary_metric
from tunewise.measuring.curve import learning_curve
from tunewise.measuring.drift import drift
from tunewise.measuring.learning_curve import CurveFit
from tunewise.measuring.selection import (
    candidate_names,
    candidate_specs,
    ladder_settings,
    model_for,
    pinned,
    suggested_command,
)
from tunewise.models.registry import load_backend
from tunewise.options import RunOptions
from tunewise.retrieval.knowledge import Knowledge, load_knowledge
from tunewise.run_context import (
    Backends,
    Measured,
    RunContext,
    judge_for,
    judge_model,
    measure,
    plan_ladder,
    trains_locally,
    tunes_remotely,
    warm_up_training,
)
from tunewise.strategies.prepare import prepare_candidate
from tunewise.task.config import ExtraDataset, Task
from tunewise.task.data import (
    Dataset,
    Example,
    find_leaks,
    load_dataset,
    read_inputs,
    sample_examples,
    stratify_by_label,
)
from tunewise.task.loading import task_hash


@dataclass
class RunResult:
    """A finished run, ready to be written and rendered."""

    task: Task
    task_hash: str
    dataset: Dataset
    test: list[Example]  # the examples actually evaluated (after --limit)
    options: RunOptions
    candidates: list[CandidateResult]
    recommendation: Recommendation
    seconds: float
    learning_curve: CurveFit | None = None
    knowledge: Knowledge | None = None
    code_version: str = __version__
    datasets: list[DatasetResult] = field(default_factory=list)  # main first, when datasets: set
    checks: dict[str, Any] | None = None  # tunewise check's findings on the task's inputs
    languages: dict[str, Any] | None = None  # per-language quality, for multilingual test sets
    specs: list[CandidateSpec] = field(default_factory=list)  # what each candidate ran with
    ladder: LadderRecord | None = None  # the default run's walk up the four steps
    judge: dict[str, Any] | None = None  # the model judge: settings, calibration, cost


def with_answer_budget(task: Task, train: Sequence[Example]) -> Task:
    """The task with a concrete generation budget: its own, else twice the longest training
    answer at about 3 characters a token (so short-answer tasks are not left to ramble for
    hundreds of tokens), within 32..512."""
    if task.max_new_tokens is not None:
        return task
    longest = max((len(e.output) for e in train), default=0)
    budget = min(512, max(32, 2 * -(-longest // 3)))
    return task.model_copy(update={"max_new_tokens": budget})


def load_data(
    task: Task, options: RunOptions, files: ExtraDataset | None = None
) -> tuple[Dataset, list[Example]]:
    """The task's data (or one of its extra datasets), checked for leakage; the test examples
    to evaluate after --limit or data.test_sample."""
    dataset = load_dataset(
        files.train if files else task.data.train,
        files.test if files else task.data.test,
        task.contract.output_format,
        test_fraction=task.data.test_fraction,
        seed=task.seed,
        entry=files or task.data,
    )
    if files is None and task.data.unlabeled is not None:
        # Read now, so a bad line fails before any model loads; a student trained on teacher
        # labels of test inputs has seen the test, so those inputs count as leaked.
        unlabeled = read_inputs(task.data.unlabeled, task.contract.output_format)
        extra = [i for i in find_leaks(unlabeled, dataset.test) if i not in dataset.leaked]
        dataset = replace(dataset, leaked=[*dataset.leaked, *extra])
    if dataset.leaked and options.strict:
        raise DataError(
            task.data.test or task.data.train,
            None,
            None,
            f"{len(dataset.leaked)} test inputs also appear in train or data.unlabeled "
            f"(first: {dataset.leaked[0]}); remove them or run without --strict",
        )
    test = dataset.test
    limit = sample_size(task, options, extra=files is not None)
    if limit is not None:
        stratify = stratify_by_label(task.contract.output_format)
        test = sample_examples(test, limit, task.seed, stratify)
    return dataset, test


def sample_size(task: Task, options: RunOptions, *, extra: bool = False) -> int | None:
    """How many test examples to sample (None: all): --limit, else the task's data.test_sample,
    which is about the task's own test set, not its extra datasets."""
    if options.limit == "all":
        return None
    if options.limit is not None:
        return options.limit
    return None if extra else task.data.test_sample


def run_task(
    task: Task, options: RunOptions | None = None, progress: Progress | None = None
) -> RunResult:
    """Measure the candidates on the same held-out examples and decide: the pinned ones, or,
    by default, the ladder's steps as far as the budget and the gap take it."""
    options = options or RunOptions()
    progress = progress or SilentProgress()
    started = time.perf_counter()
    hashed = task_hash(task)
    dataset, test = load_data(task, options)
    task = with_answer_budget(task, dataset.train)
    climbing = not pinned(task, options)
    specs = [] if climbing else candidate_specs(task, options)
    checks = check_task(task, model=options.model, loaded=dataset)
    # Documents are read (and indexed) before any model loads: bad data fails fast.
    knowledge = documents_for(task, specs, progress, climbing=climbing)
    backends = prepare_backends(task, options, specs)
    cache = ResponseCache(tunewise_home() / "cache.sqlite")
    judge = judge_for(task, options, backends, cache)
    run = RunContext(task, options, dataset, test, backends, cache, progress, knowledge, judge)
    try:
        measured = climb_ladder(run) if climbing else measure_pinned(run, specs)
        run = replace(run, test=measured.test)
        curve = curve_for(run, measured)
        datasets = other_datasets(run, measured)
        judged = judgement(run)
    finally:
        cache.close()
    recommendation = decide_from(task, dataset, measured.results, curve)
    languages = language_drift(run, measured.results, checks)
    recommendation = with_warnings(recommendation, datasets, judged)
    following = following_step(run, measured, curve, recommendation)
    return RunResult(
        task,
        hashed,
        dataset,
        run.test,
        options,
        measured.results,
        replace(recommendation, next_step=following),
        time.perf_counter() - started,
        learning_curve=curve,
        knowledge=knowledge,
        datasets=datasets,
        checks=checks,
        languages=languages,
        specs=list(measured.specs),
        ladder=measured.ladder,
        judge=judged,
    )


def documents_for(
    task: Task, specs: Sequence[CandidateSpec], progress: Progress, *, climbing: bool
) -> Knowledge | None:
    """The task's documents, read (and indexed when a candidate retrieves)."""
    if not task.data.documents:
        return None
    retrieving = climbing or bool(names_where(retrieves=True) & {s.strategy for s in specs})
    return load_knowledge(task, retrieving, progress)


def prepare_backends(task: Task, options: RunOptions, specs: Sequence[CandidateSpec]) -> Backends:
    """The run's backends; a pinned run loads its models up front, so a bad spec fails fast."""
    backends = Backends(task, options)
    for spec in specs:
        backends.for_spec(spec)
    return backends


def climb_ladder(run: RunContext) -> Measured:
    """The default run: the four steps, as far as the budget and the gap take it."""
    task, options = run.task, run.options
    settings = ladder_settings(task)
    ladder = Ladder(
        task=task,
        test=run.test,
        train_examples=len(run.dataset.train),
        trainable=trains_locally(run, settings),
        tunes_remotely=tunes_remotely(task, options),
        measure=partial(measure, run),
        decide=lambda measured: decide_from(task, run.dataset, measured),
        train_seconds=partial(warm_up_training, run),
        command=lambda strategies: suggested_command(options, strategies),
        budget=options.budget,
        settings=settings,
        scores=answer_scores(task),
        metric=primary_metric(task),
    )
    planned = plan_ladder(run, settings)
    ladder.timing = planned.timing
    record = replace(walk(ladder), plan=checked(planned, ladder.results))
    names = [r.name for r in ladder.results]
    return Measured(ladder.specs, names, ladder.results, ladder.test, record, ladder.curve)


def measure_pinned(run: RunContext, specs: list[CandidateSpec]) -> Measured:
    """The candidates the task or --strategies pinned, each measured in turn."""
    names = candidate_names(specs)
    results = [measure(run, spec, name) for spec, name in zip(specs, names, strict=True)]
    return Measured(specs, names, results, run.test)


def curve_for(run: RunContext, measured: Measured) -> CurveFit | None:
    """The learning curve --learning-curve asks for, else the one the ladder fitted when it
    trained on a subsample."""
    sizes = run.options.learning_curve
    if not sizes:
        return measured.curve
    return learning_curve(run.task, measured.specs, measured.results, sizes, partial(measure, run))


def other_datasets(run: RunContext, measured: Measured) -> list[DatasetResult]:
    """The same candidates, trained and tested on each extra dataset's own data (main first);
    the freshness probe belongs to the documents and runs once, on the main dataset."""
    task = run.task
    datasets = []
    if task.datasets:
        datasets.append(DatasetResult(PRIMARY, run.dataset, run.test, measured.results))
    quiet = replace(run.knowledge, questions=()) if run.knowledge else None
    for files in task.datasets:
        extra, extra_test = load_data(task, run.options, files)
        results = [
            measure_candidate(
                task, spec, name=name, backend=run.backends.for_spec(spec), dataset=extra,
                test=extra_test, cache=run.cache, progress=run.progress, knowledge=quiet,
                judge=run.judge,
            )
            for spec, name in zip(measured.specs, measured.names, strict=True)
        ]  # fmt: skip
        datasets.append(DatasetResult(files.name, extra, extra_test, results))
    return datasets


def judgement(run: RunContext) -> dict[str, Any] | None:
    """The judge's settings, calibration and cost, when the run had a judge."""
    if run.judge is None:
        return None
    examples = [*run.dataset.train, *run.dataset.test]
    return run_judgement(
        run.judge, judge_model(run.task, run.options), examples, price_list(run.task)
    )


def language_drift(
    run: RunContext, results: Sequence[CandidateResult], checks: dict[str, Any]
) -> dict[str, Any] | None:
    """Per-language quality of the measured candidates, for multilingual test sets."""
    task = run.task
    return drift(
        task.contract.output_format,
        primary_metric(task),
        run.test,
        [(c.name, c.predictions) for c in results if c.measured],
        answer_language=task.contract.answer_language,
        trained_languages=checks["languages"]["train"].get("shares"),
        seed=task.seed,
    )


def with_warnings(
    recommendation: Recommendation, datasets: list[DatasetResult], judged: dict[str, Any] | None
) -> Recommendation:
    """The decision's reasons, plus where the datasets disagree and the judge's calibration
    warning when the decision rests on the judge."""
    if datasets:
        flags = disagreements(dataset_table(datasets), recommendation.metric)
        recommendation = replace(recommendation, reasons=[*recommendation.reasons, *flags])
    warning = ((judged or {}).get("calibration") or {}).get("warning")
    if warning and recommendation.metric == "judge":
        recommendation = replace(recommendation, reasons=[*recommendation.reasons, warning])
    return recommendation


def following_step(
    run: RunContext, measured: Measured, curve: CurveFit | None, recommendation: Recommendation
) -> NextStep:
    """What to do next, from the decision, the walk and the curve."""
    task, options = run.task, run.options
    metric = primary_metric(task)
    return next_step(
        recommendation,
        measured.ladder,
        curve,
        measured={r.name: (r.strategy, r.metrics[metric]) for r in measured.results if r.measured},
        target=task.target,
        train_examples=len(run.dataset.train),
        command=lambda strategies, **flags: suggested_command(options, strategies, **flags),
        model=options.model or task.model,
    )


def train_only(
    task: Task, options: RunOptions, progress: Progress | None = None
) -> list[tuple[str, Path]]:
    """Train (or find in the cache) the adapters of the task's fine-tuning candidates (those
    trained here: a service's job starts with `tunewise run`)."""
    progress = progress or SilentProgress()
    training = names_where(trains=True, trains_remotely=False)
    specs = [s for s in candidate_specs(task, options) if s.strategy in training]
    if not specs:
        methods = ", ".join(sorted(training))
        raise TunewiseError(f"no fine-tuning candidate to train; use --strategies with {methods}")
    dataset, _ = load_data(task, options)
    task = with_answer_budget(task, dataset.train)
    retrieving = bool(names_where(retrieves=True) & {s.strategy for s in specs})
    knowledge = load_knowledge(task, True, progress) if retrieving else None
    trained = []
    for spec, name in zip(specs, candidate_names(specs), strict=True):
        backend = load_backend(model_for(spec, task, options), task.models, dtype=options.dtype)
        predictor = prepare_candidate(
            task, spec, train=dataset.train, backend=backend, name=name, progress=progress,
            index=knowledge.index if knowledge else None,
        )  # fmt: skip
        assert predictor.setup.adapter is not None  # only the strategies that train are here
        trained.append((name, predictor.setup.adapter))
    return trained
