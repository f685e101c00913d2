"""Graded metrics: per-example scores in [0, 1] beyond the output format's own, for answers that
exact words cannot judge (replies, summaries, rewrites): embedding similarity to the reference on
every text task, the task's `python:` user metrics on any, and the model judge's `judge` score
when the task has a judge.

Each is a mean over examples with a bootstrap CI like every metric, is recorded per example in
predictions.jsonl, and can be the target's metric (the prompt search and the language breakdown
score by it then).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from tunewise.evaluation.metrics import field_counts, field_f1_from_counts, macro_f1
from tunewise.evaluation.scoring import example_scores
from tunewise.evaluation.stats import MetricValue, mean_with_ci
from tunewise.retrieval.embedders import Embedder, load_embedder
from tunewise.task.user_metric import is_user_metric, load_user_metric, user_scores

if TYPE_CHECKING:
    from tunewise.task.config import Task
    from tunewise.task.data import Example

EMBEDDING_SIMILARITY = "embedding_similarity"
JUDGE = "judge"


class GradedMetric(Protocol):
    """One score in [0, 1] per answer."""

    name: str

    def scores(self, outputs: Sequence[str], examples: Sequence[Example]) -> list[float]: ...


class Judgement(Protocol):
    """What the graded metrics read of a judge's outcome (inference/judge.py's JudgeOutcome)."""

    scores: list[float]


class Judging(Protocol):
    """The run's model judge (inference/judge.py's ModelJudge)."""

    def grade(
        self, candidate: str, outputs: Sequence[str], examples: Sequence[Example]
    ) -> Judgement: ...


@dataclass
class Graded:
    """A candidate's graded metrics with CIs, each answer's scores, and the judge's outcome."""

    metrics: dict[str, MetricValue]
    rows: list[dict[str, float]]
    judged: Judgement | None = None


def embedding_similarity(
    embedder: Embedder, outputs: Sequence[str], references: Sequence[str]
) -> list[float]:
    """Cosine similarity of each answer's embedding to its reference's, clipped to [0, 1]: it
    credits a paraphrase that shares no word with the reference, which token overlap cannot.
    Both empty is a correct "no answer" (1), one empty shares nothing (0)."""
    said = [bool(o.strip()) for o in outputs]
    meant = [bool(r.strip()) for r in references]
    both = [i for i in range(len(outputs)) if said[i] and meant[i]]
    values = [float(said[i] == meant[i]) for i in range(len(outputs))]
    if both:
        # The query side for both texts: E5 asks for its query prefix on symmetric tasks.
        left = embedder.queries([outputs[i] for i in both])
        right = embedder.queries([references[i] for i in both])
        cosines = np.clip(np.sum(left * right, axis=1), 0.0, 1.0)
        for i, value in zip(both, cosines, strict=True):
            values[i] = float(value)
    return values


@dataclass(frozen=True)
class EmbeddingSimilarity:
    """Similarity by the task's retrieval embedder (MiniLM for English, E5 for other languages)."""

    embedder: str
    name: str = EMBEDDING_SIMILARITY

    def scores(self, outputs: Sequence[str], examples: Sequence[Example]) -> list[float]:
        references = [e.output for e in examples]
        return embedding_similarity(load_embedder(self.embedder), outputs, references)


def example_record(example: Example) -> dict[str, Any]:
    """An example as a user metric receives it: its data line's fields."""
    return {**example.extra, "id": example.id, "input": example.input, "output": example.output}


@dataclass(frozen=True)
class UserMetric:
    """`python:MODULE:FUNCTION`, looked up in the task's folder first."""

    name: str
    folder: Path | None

    def scores(self, outputs: Sequence[str], examples: Sequence[Example]) -> list[float]:
        function = load_user_metric(self.name, self.folder)
        references = [e.output for e in examples]
        records = [example_record(e) for e in examples]
        return user_scores(self.name, function, outputs, references, records)


def graded_metrics(task: Task) -> list[GradedMetric]:
    """The task's graded metrics, in report order: embedding similarity (text tasks), then its
    user metrics (`metrics:` and a `python:` target)."""
    found: list[GradedMetric] = []
    if task.contract.output_format.type == "text":
        found.append(EmbeddingSimilarity(task.retrieval.embedder))
    names = list(task.metrics)
    if task.target is not None and is_user_metric(task.target.metric):
        names.append(task.target.metric)
    for name in dict.fromkeys(names):
        found.append(UserMetric(name, task.folder))
    return found


def measure_graded(
    task: Task,
    outputs: Sequence[str],
    examples: Sequence[Example],
    *,
    judge: Judging | None = None,
    candidate: str = "",
) -> Graded:
    """Each graded metric with its CI and each answer's scores (in the examples' order); with a
    judge, its `judge` score of `candidate`'s answers too."""
    result = Graded({}, [{} for _ in examples])
    if not examples:
        return result
    found = [(g.name, g.scores(outputs, examples)) for g in graded_metrics(task)]
    if judge is not None:
        result.judged = judge.grade(candidate, outputs, examples)
        found.append((JUDGE, result.judged.scores))
    for name, values in found:
        result.metrics[name] = mean_with_ci(np.array(values), seed=task.seed)
        for row, value in zip(result.rows, values, strict=True):
            row[name] = round(value, 4)
    return result


def metric_scores(
    task: Task,
    metric: str,
    outputs: Sequence[str],
    examples: Sequence[Example],
    *,
    judge: Judging | None = None,
    candidate: str = "",
) -> list[float]:
    """Each answer's score on `metric`: a graded metric's own (the judge's of `candidate`'s
    answers), else the format's per-example score (accuracy for macro_f1, field F1 for micro
    field_f1)."""
    if metric == JUDGE:
        if judge is None:
            raise ValueError("the judge metric needs the run's judge")
        return judge.grade(candidate, outputs, examples).scores
    for graded in graded_metrics(task):
        if graded.name == metric:
            return graded.scores(outputs, examples)
    references = [e.output for e in examples]
    return example_scores(task.contract.output_format, metric, outputs, references)


def metric_value(
    task: Task,
    metric: str,
    outputs: Sequence[str],
    examples: Sequence[Example],
    *,
    judge: Judging | None = None,
    candidate: str = "",
) -> float:
    """`metric` over a set of answers, as the test metric is computed, without its CI: macro F1
    and micro field F1 from their counts, every other metric the mean of its per-example
    scores."""
    output_format = task.contract.output_format
    references = [e.output for e in examples]
    if metric == "macro_f1" and output_format.type == "label":
        return macro_f1(outputs, references, output_format.labels)
    if metric == "field_f1":
        counts = [field_counts(o, r) for o, r in zip(outputs, references, strict=True)]
        tp, fp, fn = (sum(c[i] for c in counts) for i in range(3))
        return field_f1_from_counts(tp, fp, fn)
    values = metric_scores(task, metric, outputs, examples, judge=judge, candidate=candidate)
    return sum(values) / len(values)
