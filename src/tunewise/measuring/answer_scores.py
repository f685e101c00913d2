"""Each answer's score on the target's metric, for the ladder's sequential rounds."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tunewise.evaluation.graded import JUDGE, graded_metrics, metric_scores
from tunewise.measuring.candidate import CandidateResult, primary_metric
from tunewise.task.config import Task
from tunewise.task.data import Example

# Not means of per-answer scores in [0, 1]: computed from the sample's counts (macro F1, micro
# field F1), paid per call (the judge), or a user's function on an unknown scale; candidates
# measured on them answer the whole sample at once.
NOT_SEQUENTIAL = frozenset({"macro_f1", "field_f1", JUDGE})

Scores = Callable[[CandidateResult, Sequence[Example]], Sequence[float]]
"""A measured candidate's score per answer on the target's metric (the ladder's rounds)."""


def answer_scores(task: Task) -> Scores | None:
    """The scorer of the task's target metric, or None where sequential rounds do not apply."""
    metric = primary_metric(task)
    graded = {g.name for g in graded_metrics(task)}
    if task.target is None or metric in NOT_SEQUENTIAL or metric in graded:
        return None

    def scores(result: CandidateResult, asked: Sequence[Example]) -> list[float]:
        by_id = {e.id: e for e in asked}
        examples = [by_id[p.example_id] for p in result.predictions]
        outputs = [p.output for p in result.predictions]
        return metric_scores(task, metric, outputs, examples)

    return scores
