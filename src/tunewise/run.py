"""`tunewise run` as a recipe: load, prepare, predict, evaluate, decide (results.py writes)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tunewise import __version__
from tunewise.checks import check_task
from tunewise.deciding.climb import walk
from tunewise.deciding.from_results import decide_from, price_list
from tunewise.deciding.ladder import Ladder, LadderRecord
from tunewise.deciding.learning_curve import CurveFit
from tunewise.deciding.next_step import next_step
from tunewise.deciding.verdict import Recommendation
from tunewise.errors import DataError, TunewiseError
from tunewise.home import tunewise_home
from tunewise.inference.cache import ResponseCache
from tunewise.measuring.across_datasets import PRIMARY, DatasetResult, dataset_table, disagreements
from tunewise.measuring.candidate import CandidateResult, measure_candidate, primary_metric
from tunewise.measuring.curve import learning_curve
from tunewise.measuring.drift import drift
from tunewise.measuring.judge import ModelJudge, run_judgement
from tunewise.measuring.progress import Progress, SilentProgress
from tunewise.measuring.selection import (
    candidate_names,
    candidate_specs,
    ladder_settings,
    model_for,
    pinned,
    suggested_command,
)
from tunewise.models.backend import Backend
from tunewise.models.local import LocalModel
from tunewise.models.registry import load_backend
from tunewise.options import RunOptions
from tunewise.retrieval.knowledge import Knowledge, load_knowledge
from tunewise.strategies.catalog import first_in_ladder, names_where
from tunewise.strategies.prepare import prepare_candidate
from tunewise.strategies.specs import CandidateSpec, FineTuningOptions
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
    retrieving = climbing or bool(names_where(retrieves=True) & {s.strategy for s in specs})
    knowledge = load_knowledge(task, retrieving, progress) if task.data.documents else None
    backends: dict[str, Backend] = {}

    def backend_named(model: str) -> Backend:
        if model not in backends:
            backends[model] = load_backend(model, task.models, dtype=options.dtype)
        return backends[model]

    def backend_for(spec: CandidateSpec) -> Backend:
        return backend_named(model_for(spec, task, options))

    for spec in specs:  # a pinned run loads its models up front: a bad spec fails fast
        backend_for(spec)
    cache = ResponseCache(tunewise_home() / "cache.sqlite")
    judge, judge_model, judged = None, None, None
    if task.judge is not None:
        judge_model = task.judge.model or options.model or task.model
        judge = ModelJudge(task.judge, task.contract, backend_named(judge_model), cache, task.seed)

    def measure(
        spec: CandidateSpec, name: str, examples: Sequence[Example] | None = None
    ) -> CandidateResult:
        asked = list(test if examples is None else examples)
        return measure_candidate(
            task, spec, name=name, backend=backend_for(spec), dataset=dataset, test=asked,
            cache=cache, progress=progress, knowledge=knowledge, repeats=options.repeats,
            judge=judge,
        )  # fmt: skip

    def warm_up_training(spec: FineTuningOptions, name: str) -> tuple[float, int]:
        """A short training's seconds and examples (its adapter is cached like any)."""
        prepared = prepare_candidate(
            task, spec, train=dataset.train, backend=backend_for(spec), name=name,
            progress=progress,
        )  # fmt: skip
        training = prepared.setup.training
        assert training is not None  # spec is a fine-tuning candidate: it trained
        return training.seconds, training.examples * spec.epochs

    ladder = None
    try:
        if climbing:
            settings = ladder_settings(task)
            ladder = Ladder(
                task=task,
                test=test,
                train_examples=len(dataset.train),
                trainable=isinstance(
                    backend_for(settings(first_in_ladder("fine-tuning"))), LocalModel
                ),
                measure=measure,
                decide=lambda measured: decide_from(task, dataset, measured),
                train_seconds=warm_up_training,
                command=lambda strategies: suggested_command(options, strategies),
                budget=options.budget,
                settings=settings,
            )
            record = walk(ladder)
            specs, results, test = ladder.specs, ladder.results, ladder.test
            names = [r.name for r in results]
        else:
            names = candidate_names(specs)
            results = [measure(spec, name) for spec, name in zip(specs, names, strict=True)]
        curve = None
        if options.learning_curve:
            curve = learning_curve(task, specs, results, options.learning_curve, measure)
        datasets = []
        if task.datasets:
            datasets.append(DatasetResult(PRIMARY, dataset, test, results))
        # The other datasets: the same candidates, trained and tested on each dataset's own data;
        # the freshness probe belongs to the documents and runs once, on the main dataset.
        quiet = replace(knowledge, questions=()) if knowledge else None
        for files in task.datasets:
            extra, extra_test = load_data(task, options, files)
            measured = [
                measure_candidate(
                    task, spec, name=name, backend=backend_for(spec), dataset=extra,
                    test=extra_test, cache=cache, progress=progress, knowledge=quiet, judge=judge,
                )
                for spec, name in zip(specs, names, strict=True)
            ]  # fmt: skip
            datasets.append(DatasetResult(files.name, extra, extra_test, measured))
        judged = None
        if judge is not None and judge_model is not None:
            examples = [*dataset.train, *dataset.test]
            judged = run_judgement(judge, judge_model, examples, price_list(task))
    finally:
        cache.close()
    recommendation = decide_from(task, dataset, results, curve)
    measured = [(c.name, c.predictions) for c in results if c.measured]
    languages = drift(
        task.contract.output_format,
        primary_metric(task),
        test,
        measured,
        answer_language=task.contract.answer_language,
        trained_languages=checks["languages"]["train"].get("shares"),
        seed=task.seed,
    )
    if datasets:
        flags = disagreements(dataset_table(datasets), recommendation.metric)
        recommendation = replace(recommendation, reasons=[*recommendation.reasons, *flags])
    warning = ((judged or {}).get("calibration") or {}).get("warning")
    if warning and recommendation.metric == "judge":
        recommendation = replace(recommendation, reasons=[*recommendation.reasons, warning])
    walked = record if ladder is not None else None
    metric = primary_metric(task)
    following = next_step(
        recommendation,
        walked,
        curve,
        measured={r.name: (r.strategy, r.metrics[metric]) for r in results if r.measured},
        target=task.target,
        train_examples=len(dataset.train),
        command=lambda strategies, **flags: suggested_command(options, strategies, **flags),
        model=options.model or task.model,
    )
    recommendation = replace(recommendation, next_step=following)
    return RunResult(
        task,
        hashed,
        dataset,
        test,
        options,
        results,
        recommendation,
        time.perf_counter() - started,
        learning_curve=curve,
        knowledge=knowledge,
        datasets=datasets,
        checks=checks,
        languages=languages,
        specs=list(specs),
        ladder=walked,
        judge=judged,
    )


def train_only(
    task: Task, options: RunOptions, progress: Progress | None = None
) -> list[tuple[str, Path]]:
    """Train (or find in the cache) the adapters of the task's fine-tuning candidates."""
    progress = progress or SilentProgress()
    training = names_where(trains=True)
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
