"""`tunewise run` as a recipe: load, prepare, predict, evaluate, decide (results.py writes)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from tunewise import __version__
from tunewise.across_datasets import PRIMARY, DatasetResult, dataset_table, disagreements
from tunewise.budget import DEFAULT_BUDGET, parse_budget
from tunewise.cache import ResponseCache
from tunewise.candidates import (
    RETRIEVING,
    STRATEGIES,
    CandidateSpec,
    FewShotCandidate,
    FineTuningOptions,
    HybridCandidate,
    LoraCandidate,
    OptimizedPromptCandidate,
    RagCandidate,
    ZeroShotCandidate,
)
from tunewise.checks import check_task
from tunewise.costs import PriceList, TokenPrice, request_cost, setup_cost
from tunewise.data import (
    Dataset,
    Example,
    find_leaks,
    load_dataset,
    read_inputs,
    sample_examples,
    stratify_by_label,
)
from tunewise.decision import FINE_TUNED, CandidateSummary, Recommendation, decide
from tunewise.errors import DataError, TunewiseError
from tunewise.evaluation import MetricValue
from tunewise.knowledge import Knowledge, load_knowledge
from tunewise.ladder import Ladder, LadderRecord, walk
from tunewise.learning_curve import CurveFit, CurvePoint, estimate_examples
from tunewise.measure import CandidateResult, measure_candidate, primary_metric
from tunewise.models.backend import Backend
from tunewise.models.local import LocalModel, tunewise_home
from tunewise.models.registry import load_backend
from tunewise.multilingual import drift
from tunewise.next_step import next_step
from tunewise.progress import Progress, SilentProgress
from tunewise.strategies import PREPARERS
from tunewise.task import ExtraDataset, Task, task_hash

DEFAULT_BUDGET_SECONDS = parse_budget(DEFAULT_BUDGET)


@dataclass(frozen=True)
class RunOptions:
    """The knobs of `tunewise run` that are not in task.yaml."""

    strategies: tuple[str, ...] | None = None
    model: str | None = None
    limit: int | Literal["all"] | None = None  # None: the task's data.test_sample
    strict: bool = False
    learning_curve: tuple[int, ...] | None = None  # training-set sizes for the first lora
    dtype: str = "auto"  # local models' inference dtype: auto | float32 | bfloat16
    repeats: int = 0  # sampled answers per example for flakiness (0: none)
    budget: float | None = (
        DEFAULT_BUDGET_SECONDS  # the default ladder's compute budget (None: none)
    )
    task_file: str = "task.yaml"  # how the task is named in the commands the run suggests


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


def pinned(task: Task, options: RunOptions) -> bool:
    """Whether the run measures exactly what --strategies or the task's candidates name; else
    it walks the ladder."""
    return bool(options.strategies) or any(not getattr(c, "opt_in", False) for c in task.candidates)


def candidate_specs(task: Task, options: RunOptions) -> list[CandidateSpec]:
    """The task's pinned candidates, or those of --strategies (the task's settings of each,
    else its defaults); the ladder's steps choose their own (see ladder_settings)."""
    wanted = options.strategies
    if not wanted:
        return [c for c in task.candidates if not getattr(c, "opt_in", False)]
    unknown = [s for s in wanted if s not in STRATEGIES]
    if unknown:
        raise TunewiseError(f"unknown strategy '{unknown[0]}'; available: {', '.join(STRATEGIES)}")
    # Each wanted strategy: the task's candidates of that strategy, else its defaults.
    if task.data.documents is None and (retrieving := RETRIEVING.intersection(wanted)):
        raise TunewiseError(
            f"strategy '{sorted(retrieving)[0]}' retrieves from documents; "
            "set data.documents in task.yaml to a folder or JSONL of documents"
        )
    specs: list[CandidateSpec] = []
    for strategy in dict.fromkeys(wanted):
        listed = [c for c in task.candidates if c.strategy == strategy]
        specs.extend(listed or [default_candidate(strategy)])
    return specs


def ladder_settings(task: Task) -> Callable[[str], CandidateSpec]:
    """A ladder step's candidate: the task's (opt-in) candidate of that strategy, else defaults."""

    def settings(strategy: str) -> CandidateSpec:
        listed = [c for c in task.candidates if c.strategy == strategy]
        return listed[0] if listed else default_candidate(strategy)

    return settings


def suggested_command(options: RunOptions, strategies: str, **flags: str) -> str:
    """The command that measures `strategies` with this run's other flags (`flags` override
    them: model, limit, learning_curve)."""
    given = {"model": options.model, "limit": options.limit}
    given |= {"dtype": options.dtype if options.dtype != "auto" else None}
    parts = [f"tunewise run {options.task_file} --strategies {strategies}"]
    for flag, value in (given | flags).items():
        if value is not None:
            parts.append(f"--{flag.replace('_', '-')} {value}")
    return " ".join(parts)


def default_candidate(strategy: str) -> CandidateSpec:
    if strategy == "zero-shot":
        return ZeroShotCandidate(strategy="zero-shot")
    if strategy == "few-shot":
        return FewShotCandidate(strategy="few-shot")
    if strategy == "optimized-prompt":
        return OptimizedPromptCandidate(strategy="optimized-prompt")
    if strategy == "rag":
        return RagCandidate(strategy="rag")
    if strategy == "hybrid":
        return HybridCandidate(strategy="hybrid")
    return LoraCandidate(strategy=strategy)  # type: ignore[arg-type]


def model_for(spec: CandidateSpec, task: Task, options: RunOptions) -> str:
    """The candidate's own model, else --model, else the task's."""
    return spec.model or options.model or task.model


def candidate_names(specs: Sequence[CandidateSpec]) -> list[str]:
    names = [spec.name or spec.strategy for spec in specs]
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return unique


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
    retrieving = climbing or any(spec.strategy in RETRIEVING for spec in specs)
    knowledge = load_knowledge(task, retrieving, progress) if task.data.documents else None
    backends: dict[str, Backend] = {}

    def backend_for(spec: CandidateSpec) -> Backend:
        model = model_for(spec, task, options)
        if model not in backends:
            backends[model] = load_backend(model, task.models, dtype=options.dtype)
        return backends[model]

    for spec in specs:  # a pinned run loads its models up front: a bad spec fails fast
        backend_for(spec)
    cache = ResponseCache(tunewise_home() / "cache.sqlite")

    def measure(
        spec: CandidateSpec, name: str, examples: Sequence[Example] | None = None
    ) -> CandidateResult:
        asked = list(test if examples is None else examples)
        return measure_candidate(
            task, spec, name, backend_for(spec), dataset, asked, cache, progress, knowledge,
            options.repeats,
        )  # fmt: skip

    def warm_up_training(spec: FineTuningOptions, name: str) -> tuple[float, int]:
        """A short training's seconds and examples (its adapter is cached like any)."""
        prepared = PREPARERS[spec.strategy](
            task, spec, dataset.train, backend_for(spec), name, progress
        )
        training = prepared.details["training"]
        return float(training["seconds"]), int(training["examples"]) * spec.epochs

    ladder = None
    try:
        if climbing:
            settings = ladder_settings(task)
            ladder = Ladder(
                task=task,
                test=test,
                train_examples=len(dataset.train),
                trainable=isinstance(backend_for(settings("lora")), LocalModel),
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
                    task, spec, name, backend_for(spec), extra, extra_test, cache, progress,
                    quiet,
                )
                for spec, name in zip(specs, names, strict=True)
            ]  # fmt: skip
            datasets.append(DatasetResult(files.name, extra, extra_test, measured))
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
    )


def train_only(
    task: Task, options: RunOptions, progress: Progress | None = None
) -> list[tuple[str, Path]]:
    """Train (or find in the cache) the adapters of the task's fine-tuning candidates."""
    progress = progress or SilentProgress()
    specs = [s for s in candidate_specs(task, options) if s.strategy in FINE_TUNED]
    if not specs:
        raise TunewiseError("no fine-tuning candidate to train; use --strategies lora or hybrid")
    dataset, _ = load_data(task, options)
    task = with_answer_budget(task, dataset.train)
    retrieving = any(s.strategy in RETRIEVING for s in specs)
    knowledge = load_knowledge(task, True, progress) if retrieving else None
    trained = []
    for spec, name in zip(specs, candidate_names(specs), strict=True):
        backend = load_backend(model_for(spec, task, options), task.models, dtype=options.dtype)
        extra = {"index": knowledge.index} if knowledge and spec.strategy in RETRIEVING else {}
        predictor = PREPARERS[spec.strategy](
            task, spec, dataset.train, backend, name, progress, **extra
        )
        trained.append((name, Path(predictor.details["adapter_path"])))
    return trained


def price_list(task: Task) -> PriceList:
    """The task's prices as the cost model reads them; a `models:` entry's prices count as
    token prices of its name."""
    prices = task.prices
    tokens = {
        spec: TokenPrice(p.input_per_million, p.output_per_million)
        for spec, p in prices.tokens.items()
    }
    for name, endpoint in task.models.items():
        if endpoint.prices is not None and name not in tokens:
            p = endpoint.prices
            tokens[name] = TokenPrice(p.input_per_million, p.output_per_million)
    return PriceList(prices.compute_usd_per_hour, prices.labelling_usd_per_example, tokens)


def learning_curve(
    task: Task,
    specs: Sequence[CandidateSpec],
    results: Sequence[CandidateResult],
    sizes: Sequence[int],
    measure: Callable[[CandidateSpec, str], CandidateResult],
) -> CurveFit:
    """Train the first fine-tuning candidate on seeded subsets of each size; fit the curve."""
    chosen = next(
        (
            (s, r)
            for s, r in zip(specs, results, strict=True)
            if isinstance(s, LoraCandidate) and r.measured
        ),
        None,
    )
    if chosen is None:
        raise TunewiseError("--learning-curve needs a lora candidate; add lora to --strategies")
    spec, full = chosen
    metric = primary_metric(task)
    full_size = full.params["train_examples"] + full.setup["training"]["validation_examples"]
    points = [_point(full_size, full.metrics[metric])]
    for size in sorted({min(max(size, 10), full_size) for size in sizes} - {full_size}):
        subset = spec.model_copy(update={"max_train_examples": size})
        result = measure(subset, f"{full.name}@{size}")
        points.append(_point(size, result.metrics[metric]))
    target = task.target.min if task.target else None
    return estimate_examples(points, target, seed=task.seed, metric=metric)


def _point(examples: int, value: MetricValue) -> CurvePoint:
    return CurvePoint(examples, value.value, value.ci_low, value.ci_high, value.n)


def decide_from(
    task: Task,
    dataset: Dataset,
    results: Sequence[CandidateResult],
    curve: CurveFit | None = None,
) -> Recommendation:
    metric = primary_metric(task)
    prices = price_list(task)
    summaries = []
    for r in (r for r in results if r.measured):
        inputs = r.cost_inputs()
        summaries.append(
            CandidateSummary(
                r.name,
                r.strategy,
                r.metrics[metric],
                r.usage["input_tokens_per_request"] + r.usage["output_tokens_per_request"],
                r.usage["latency_p50_ms"],
                inputs.setup_seconds,
                inputs.compute_seconds_per_request,
                setup_cost(inputs, prices).usd,
                request_cost(inputs, prices).usd,
                r.usage["latency_p95_ms"],
                tuple(r.consistency.draws) if r.consistency else (),
            )
        )
    return decide(
        summaries,
        task.target,
        metric,
        train_examples=len(dataset.train),
        has_documents=task.data.documents is not None,
        learning_curve=curve.summary if curve else None,
        requests_per_month=task.usage.requests_per_month,
        horizon_months=task.usage.horizon_months,
    )
