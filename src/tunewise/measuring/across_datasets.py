"""Several representative datasets of one task: every candidate measured on each, the results
macro-averaged, and flags for a candidate that wins on one dataset but loses on another (a
decision taken on one dataset alone would not hold there).

The primary dataset (task.data) is named "main"; the task's `datasets:` add the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tunewise.evaluation import MetricValue
from tunewise.measuring.candidate import CandidateResult
from tunewise.task.data import Dataset, Example

PRIMARY = "main"


@dataclass
class DatasetResult:
    """One dataset's examples and every candidate measured on it."""

    name: str
    dataset: Dataset
    test: list[Example]
    candidates: list[CandidateResult]

    def metrics(self) -> dict[str, dict[str, MetricValue]]:
        return {c.name: c.metrics for c in self.candidates if c.measured}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "data": {
                "hash": self.dataset.hash,
                "train_examples": len(self.dataset.train),
                "test_examples": len(self.test),
            },
            "candidates": {
                name: {metric: value.to_dict() for metric, value in metrics.items()}
                for name, metrics in self.metrics().items()
            },
        }


Table = Mapping[str, Mapping[str, Mapping[str, MetricValue]]]  # dataset -> candidate -> metric


def macro_average(table: Table) -> dict[str, dict[str, float]]:
    """Per candidate, the unweighted mean over datasets of each metric every dataset has."""
    datasets = list(table.values())
    names = [n for n in datasets[0] if all(n in d for d in datasets)] if datasets else []
    averaged: dict[str, dict[str, float]] = {}
    for name in names:
        metrics = [m for m in datasets[0][name] if all(m in d[name] for d in datasets)]
        averaged[name] = {
            m: round(sum(d[name][m].value for d in datasets) / len(datasets), 4) for m in metrics
        }
    return averaged


def disagreements(table: Table, metric: str) -> list[str]:
    """A line for each candidate that is best on some dataset but behind another candidate on
    a different one, by the primary metric's point value."""
    best: dict[str, tuple[str, float]] = {}
    for dataset, candidates in table.items():
        scored = {n: m[metric].value for n, m in candidates.items() if metric in m}
        if scored:
            winner = max(scored, key=lambda n: scored[n])
            best[dataset] = (winner, scored[winner])
    lines = []
    for name in dict.fromkeys(w for w, _ in best.values()):
        won = [d for d, (w, _) in best.items() if w == name]
        lost = [d for d, (w, _) in best.items() if w != name and metric in table[d].get(name, {})]
        if won and lost:
            wins = ", ".join(f"{d} ({best[d][1]:.3f})" for d in won)
            losses = ", ".join(
                f"{d} ({table[d][name][metric].value:.3f} vs {best[d][0]} {best[d][1]:.3f})"
                for d in lost
            )
            lines.append(f"{name} is best on {wins} but behind on {losses} by {metric}")
    return lines


def dataset_table(results: Sequence[DatasetResult]) -> dict[str, dict[str, dict[str, MetricValue]]]:
    return {r.name: r.metrics() for r in results}
