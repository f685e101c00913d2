"""Measure one candidate: prepare it, answer the test examples, score the answers, and with a
document update, ask it the changed questions (the freshness probe)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tunewise.core.catalog import strategy_named
from tunewise.core.costs import CostInputs
from tunewise.core.progress import Progress
from tunewise.core.setup import IndexBuild, PromptSearch, Setup, Training
from tunewise.core.specs import CandidateSpec
from tunewise.errors import CandidateSkipped
from tunewise.evaluation import MetricValue, score, validate
from tunewise.evaluation.graded import Judging, measure_graded
from tunewise.evaluation.grounding import (
    context_metrics,
    faithfulness,
    knowledge_metrics,
    retrieval_metrics,
    stale_rate,
)
from tunewise.evaluation.sequential import SequentialStop
from tunewise.evaluation.stats import mean_with_ci
from tunewise.inference.cache import ResponseCache
from tunewise.inference.judge import JudgeOutcome
from tunewise.inference.predict import Prediction, predict
from tunewise.inference.predictor import Predictor, RetrievalUse, Retrieving
from tunewise.inference.repair import RepairRecord, repair, repairs_for
from tunewise.measuring.consistency import Consistency
from tunewise.measuring.flakiness import SUBSET, Flakiness, measure_flakiness
from tunewise.models.backend import Backend
from tunewise.models.constrained import ConstrainedModel
from tunewise.retrieval.knowledge import Knowledge
from tunewise.strategies.prepare import prepare_candidate
from tunewise.task.config import METRICS_BY_FORMAT, Task
from tunewise.task.data import Dataset, Example


@dataclass
class CandidateResult:
    """Everything measured for one candidate."""

    name: str
    strategy: str
    model: str
    fingerprint: str
    params: dict[str, Any]
    metrics: dict[str, MetricValue]
    usage: dict[str, float]
    setup: Setup
    predictions: list[Prediction] = field(repr=False)
    skipped: str | None = None  # why the candidate could not run here; then nothing is measured
    freshness: Freshness | None = None
    consistency: Consistency | None = None  # few-shot: spread across demo re-draws
    remote: bool = False  # answered by an API endpoint rather than a model on this machine
    flakiness: Flakiness | None = None  # --repeats: how answers move between samples
    repair: RepairRecord | None = None  # generated answers: what the repair loop did
    judge: JudgeOutcome | None = None  # the model judge's verdicts on the test answers
    retrieval: RetrievalUse | None = None  # a retrieving candidate: how it answered
    sequential: SequentialStop | None = None  # measured in rounds: where it stopped and why

    @property
    def measured(self) -> bool:
        return self.skipped is None

    @property
    def compute_seconds_per_request(self) -> float:
        """Mean compute per answer on the measuring machine (a batch's time shared by its
        answers); the cost side prices it."""
        total = sum(
            p.compute_ms if p.compute_ms is not None else p.latency_ms for p in self.predictions
        )
        return total / len(self.predictions) / 1000

    @property
    def compute_seconds(self) -> float:
        """The compute this measurement recorded: its answers, its setup (training, prompt
        search) and its demo re-draws; a cached answer keeps the time it took."""
        if not self.measured:
            return 0.0
        per_answer = self.compute_seconds_per_request if self.predictions else 0.0
        answers = len(self.predictions)
        if self.consistency is not None:
            answers += (len(self.consistency.draws) - 1) * self.consistency.examples
        return per_answer * answers + self.setup.seconds

    def cost_inputs(self) -> CostInputs:
        """What the cost model prices: measured usage per request and the setup's parts."""
        training = self.setup.training or Training()
        index = self.setup.index or IndexBuild()
        search = self.setup.search or PromptSearch()  # optimized-prompt: the prompt search
        # An API model's search is paid by the token; a local one's by its compute time.
        tokens = (search.input_tokens, search.output_tokens)
        # Distillation: a teacher's labelling is setup, by the token (API) or by compute time;
        # the labels a distilled student needed from people are only the teacher's demos.
        teacher = self.setup.distillation
        by_token = teacher is not None and teacher.remote
        labelled = training.examples + training.validation_examples
        return CostInputs(
            name=self.name,
            strategy=self.strategy,
            model=self.model,
            input_tokens_per_request=self.usage["input_tokens_per_request"],
            output_tokens_per_request=self.usage["output_tokens_per_request"],
            compute_seconds_per_request=self.compute_seconds_per_request,
            # A service's job is priced by its trained tokens; its wall time is not our compute.
            training_seconds=0.0 if training.remote else training.seconds,
            trained_tokens=float(training.trained_tokens) if training.remote else 0.0,
            index_seconds=index.seconds,
            search_seconds=0.0 if self.remote else search.seconds,
            setup_tokens_input=float(tokens[0]) if self.remote else 0.0,
            setup_tokens_output=float(tokens[1]) if self.remote else 0.0,
            # A fine-tuned candidate needs every example it trained and validated on labelled.
            labelled_examples=teacher.human_labels if teacher else labelled,
            remote=self.remote,
            teacher_model=teacher.teacher if teacher else None,
            teacher_seconds=teacher.seconds if teacher and not by_token else 0.0,
            teacher_tokens_input=float(teacher.input_tokens) if teacher and by_token else 0.0,
            teacher_tokens_output=float(teacher.output_tokens) if teacher and by_token else 0.0,
        )


@dataclass
class Freshness:
    """A candidate's answers to the questions a document update changed, after the update."""

    metrics: dict[str, MetricValue]
    predictions: list[Prediction] = field(repr=False)
    retrieves: bool  # whether the candidate read the patched documents


def measure_candidate(
    task: Task,
    spec: CandidateSpec,
    *,
    name: str,
    backend: Backend,
    dataset: Dataset,
    test: list[Example],
    cache: ResponseCache,
    progress: Progress,
    knowledge: Knowledge | None = None,
    repeats: int = 0,
    judge: Judging | None = None,
) -> CandidateResult:
    """Prepare one candidate, answer the test examples, score; then, where they apply, the
    freshness probe, demo re-draws, and `repeats` sampled answers for flakiness."""
    try:
        predictor = prepare_candidate(
            task, spec, train=dataset.train, backend=backend, name=name, progress=progress,
            index=knowledge.index if knowledge else None,
        )  # fmt: skip
    except CandidateSkipped as reason:
        return CandidateResult(
            name, spec.strategy, backend.spec, "", {}, {}, {}, Setup(), [], skipped=str(reason)
        )
    max_repairs = repairs_for(task, spec)
    predictions, metrics, repaired, judged = _evaluate(
        task, predictor, test, cache, progress, name, max_repairs, judge
    )
    freshness = None
    if knowledge is not None and knowledge.questions:
        freshness = _freshness(task, predictor, knowledge, cache, progress, max_repairs, judge)
    consistency = _redraws(
        task, spec, name=name, backend=backend, train=dataset.train, predictions=predictions,
        test=test, cache=cache, progress=progress, judge=judge,
    )  # fmt: skip
    flakiness = _flakiness(
        task, predictor, name, predictions, test, cache, progress, repeats, judge
    )
    return CandidateResult(
        name=name,
        strategy=spec.strategy,
        model=predictor.backend.spec,  # a fine-tuned candidate's names its adapter
        fingerprint=predictor.backend.fingerprint(),
        params={**predictor.params, **_backend_params(predictor.backend)},
        metrics=metrics,
        usage=usage_of(predictions),
        setup=replace(predictor.setup, seconds=round(predictor.setup.seconds, 4)),
        predictions=predictions,
        freshness=freshness,
        consistency=consistency,
        flakiness=flakiness,
        repair=repaired,
        remote=bool(getattr(predictor.backend, "remote", False)),
        judge=judged,
        retrieval=predictor.retrieval if isinstance(predictor, Retrieving) else None,
    )


def _redraws(
    task: Task,
    spec: CandidateSpec,
    *,
    name: str,
    backend: Backend,
    train: list[Example],
    predictions: list[Prediction],
    test: list[Example],
    cache: ResponseCache,
    progress: Progress,
    judge: Judging | None,
) -> Consistency | None:
    """The strategy's demo re-draws (its answers under re-drawn settings), where it has them."""
    redraw = strategy_named(spec.strategy).hook("redraws")
    if redraw is None:
        return None
    measured = {p.example_id: p for p in predictions}
    consistency: Consistency | None = redraw(
        task, spec, name=name, backend=backend, train=train, measured=measured,
        test=test, cache=cache, progress=progress, metric=primary_metric(task), judge=judge,
    )  # fmt: skip
    return consistency


def _flakiness(
    task: Task,
    predictor: Predictor,
    name: str,
    predictions: list[Prediction],
    test: list[Example],
    cache: ResponseCache,
    progress: Progress,
    repeats: int,
    judge: Judging | None,
) -> Flakiness | None:
    """`repeats` sampled answers to a subset of the test examples, for flakiness (None: no
    repeats asked)."""
    if repeats <= 0:
        return None
    advance = progress.stage(f"{name} samples", min(len(test), SUBSET) * repeats)
    measured = {p.example_id: p for p in predictions}
    return measure_flakiness(
        task, predictor, measured=measured, test=test, cache=cache, advance=advance,
        metric=primary_metric(task), repeats=repeats, judge=judge,
    )  # fmt: skip


def _backend_params(backend: Backend) -> dict[str, Any]:
    """A local model's dtype and decoding; where an API model was reached (never its key)."""
    endpoint = getattr(backend, "endpoint", None)
    if endpoint is not None:
        return {"endpoint": {"base_url": endpoint.base_url, "model": endpoint.model}}
    params: dict[str, Any] = {}
    if isinstance(backend, ConstrainedModel):
        params["decoding"] = "constrained"
    dtype = getattr(backend, "dtype", None)
    return params | ({"dtype": dtype} if dtype else {})


def _evaluate(
    task: Task,
    predictor: Predictor,
    examples: Sequence[Example],
    cache: ResponseCache,
    progress: Progress,
    stage: str,
    max_repairs: int = 0,
    judge: Judging | None = None,
) -> tuple[list[Prediction], dict[str, MetricValue], RepairRecord | None, JudgeOutcome | None]:
    """Answers (repaired up to max_repairs times) and their metrics: the format's, plus
    validity before repair, hallucination and abstention rates on knowledge tasks, plus
    recall@k and MRR when examples name their gold doc_id. Progress shows the answers as
    `stage` and the repair requests, when any answer is invalid, as "`stage` repairs" (up to
    max_repairs per invalid answer)."""
    output_format = task.contract.output_format
    budget = task.max_new_tokens or 0  # set by with_answer_budget
    advance = progress.stage(stage, len(examples))
    predictions = predict(
        predictor, examples, output_format, cache, max_new_tokens=budget, advance=advance
    )
    repaired = None
    if max_repairs > 0:
        predictions, repaired = repair(
            predictor,
            examples,
            predictions,
            output_format,
            cache,
            max_new_tokens=budget,
            max_repairs=max_repairs,
            stage=lambda total: progress.stage(f"{stage} repairs", total),
        )
    outputs = [p.output for p in predictions]
    references = [e.output for e in examples]
    metrics = score(output_format, outputs, references, seed=task.seed)
    graded = measure_graded(task, outputs, examples, judge=judge, candidate=predictor.name)
    metrics |= graded.metrics
    verdicts = graded.judged.verdicts if graded.judged else [None] * len(predictions)
    predictions = [
        replace(p, graded=row, verdict=verdict)
        for p, row, verdict in zip(predictions, graded.rows, verdicts, strict=True)
    ]
    if repaired is not None:
        first = [p.output if p.first_output is None else p.first_output for p in predictions]
        valid = np.array([validate(output_format, o) is None for o in first], dtype=float)
        metrics["format_validity_before_repair"] = mean_with_ci(valid, seed=task.seed)
    if task.data.documents is not None and output_format.type == "text":
        metrics |= knowledge_metrics(outputs, references, output_format.abstention, seed=task.seed)
    gold = [e.extra.get("doc_id") for e in examples]
    # A retrieving candidate's empty ranking (nothing matched) is a miss, not a reason to skip.
    if any(p.retrieved for p in predictions) and all(gold):
        ranked = [p.retrieved for p in predictions]
        metrics |= retrieval_metrics(ranked, [str(g) for g in gold], seed=task.seed)
    if isinstance(predictor, Retrieving) and output_format.type == "text":
        metrics |= _grounding(predictor, predictions, examples, output_format.abstention, task.seed)
    return predictions, metrics, repaired, graded.judged


def _grounding(
    predictor: Retrieving,
    predictions: Sequence[Prediction],
    examples: Sequence[Example],
    abstention: str | None,
    seed: int,
) -> dict[str, MetricValue]:
    """What each answer was shown: its precision and whether it held the answer, and how
    faithful the answers are to it."""
    chunks = {chunk.id: chunk for chunk in predictor.index.chunks}
    shown = [[(chunks[s].doc_id, chunks[s].text) for s in p.sources] for p in predictions]
    gold = [str(e.extra["doc_id"]) if e.extra.get("doc_id") else None for e in examples]
    metrics = context_metrics(shown, [e.output for e in examples], gold, seed=seed)
    contexts = ["\n".join(text for _, text in passages) for passages in shown]
    outputs = [p.output for p in predictions]
    if (faithful := faithfulness(outputs, contexts, abstention, seed=seed)) is not None:
        metrics["faithfulness"] = faithful
    return metrics


def _freshness(
    task: Task,
    predictor: Predictor,
    knowledge: Knowledge,
    cache: ResponseCache,
    progress: Progress,
    max_repairs: int,
    judge: Judging | None,
) -> Freshness:
    """Ask the changed questions; retrieving candidates read the patched documents, the others
    answer from what they had (prompt or adapter), as they would in production."""
    asked: Predictor = predictor
    retrieves = isinstance(predictor, Retrieving) and knowledge.updated is not None
    if retrieves:
        asked = predictor.with_index(knowledge.updated)  # type: ignore[union-attr, assignment]
    questions = list(knowledge.questions)
    stage = f"{predictor.name} freshness"
    predictions, metrics, _, _ = _evaluate(
        task, asked, questions, cache, progress, stage, max_repairs, judge
    )
    previous = [str(q.extra.get("previous", "")) for q in questions]
    if all(previous):
        outputs = [p.output for p in predictions]
        current = [q.output for q in questions]
        metrics["stale_rate"] = stale_rate(outputs, previous, current, seed=task.seed)
    return Freshness(metrics, predictions, retrieves)


def usage_of(predictions: Sequence[Prediction]) -> dict[str, float]:
    """Per-request means and latency percentiles, as measured (cached answers keep their time)."""
    latency = np.array([p.latency_ms for p in predictions])
    return {
        "input_tokens_per_request": round(float(np.mean([p.input_tokens for p in predictions])), 2),
        "output_tokens_per_request": round(
            float(np.mean([p.output_tokens for p in predictions])), 2
        ),
        "latency_p50_ms": round(float(np.percentile(latency, 50)), 2),
        "latency_p95_ms": round(float(np.percentile(latency, 95)), 2),
        # Answers whose token counts the server did not report (estimated from characters).
        "estimated_token_counts": sum(p.tokens_estimated for p in predictions),
    }


def primary_metric(task: Task) -> str:
    """The target's metric, else the output format's first."""
    return (
        task.target.metric
        if task.target
        else METRICS_BY_FORMAT[task.contract.output_format.type][0]
    )
