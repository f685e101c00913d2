"""Output consistency of a few-shot candidate: how much its quality and its answers move when
the demos are drawn again (another seeded set, in another order).

The first draw is the candidate as measured; each further draw re-answers a seeded subset of the
test examples (at most `examples`), so the cost stays bounded while the spread is real.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunewise.core.progress import Progress
from tunewise.evaluation import MetricValue
from tunewise.evaluation.graded import Judging, metric_value
from tunewise.evaluation.stats import mean_with_ci
from tunewise.inference.cache import ResponseCache
from tunewise.inference.predict import Prediction, predict
from tunewise.models.backend import Backend
from tunewise.strategies.few_shot import FewShotCandidate
from tunewise.strategies.few_shot import demos as few_shot
from tunewise.task.config import Task
from tunewise.task.data import Example, sample_examples, stratify_by_label


@dataclass(frozen=True)
class Consistency:
    """Quality per demo draw on the same examples, its spread, and per-example agreement."""

    metric: str
    draws: list[float]  # the metric on the subset, one value per draw (the first: as measured)
    examples: int
    agreement: MetricValue  # share of examples answered identically by every draw

    def to_dict(self) -> dict[str, Any]:
        values = np.array(self.draws)
        return {
            "metric": self.metric,
            "redraws": len(self.draws),
            "examples": self.examples,
            "draws": [round(v, 4) for v in self.draws],
            "spread": {
                "min": round(float(values.min()), 4),
                "max": round(float(values.max()), 4),
                "std": round(float(values.std(ddof=1)), 4) if len(values) > 1 else 0.0,
            },
            "agreement": self.agreement.to_dict(),
        }


def agreement(answers: Sequence[Sequence[str]]) -> np.ndarray:
    """1.0 per example whose (stripped) answer is the same in every draw."""
    return np.array(
        [
            float(len({a.strip() for a in per_example}) == 1)
            for per_example in zip(*answers, strict=True)
        ]
    )


def redraw(
    task: Task,
    spec: FewShotCandidate,
    *,
    name: str,
    backend: Backend,
    train: Sequence[Example],
    measured: dict[str, Prediction],
    test: Sequence[Example],
    cache: ResponseCache,
    progress: Progress,
    metric: str,
    examples: int = 60,
    judge: Judging | None = None,
) -> Consistency | None:
    """Re-draw the demos `spec.redraws - 1` more times (seeds seed+1, seed+2, ...); None when
    the candidate draws once (redraws: 1, or demos chosen per input)."""
    if spec.selection != "stratified" or spec.redraws < 2:
        return None
    subset = sample_examples(
        list(test), examples, task.seed, stratify_by_label(task.contract.output_format)
    )
    answers = [[measured[e.id].output for e in subset]]
    advance: Callable[[int], None] = progress.stage(
        f"{name} redraws", len(subset) * (spec.redraws - 1)
    )
    for offset in range(1, spec.redraws):
        drawn = task.model_copy(update={"seed": task.seed + offset})
        predictor = few_shot.prepare(drawn, spec, train, backend, name, progress)
        predictions = predict(
            predictor,
            subset,
            task.contract.output_format,
            cache,
            max_new_tokens=task.max_new_tokens or 0,
            advance=advance,
        )
        answers.append([p.output for p in predictions])
    draws = [
        metric_value(task, metric, outputs, subset, judge=judge, candidate=f"{name} draw {i}")
        for i, outputs in enumerate(answers)
    ]
    return Consistency(metric, draws, len(subset), mean_with_ci(agreement(answers), seed=task.seed))
