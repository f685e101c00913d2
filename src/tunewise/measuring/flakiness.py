"""Flakiness: how often a candidate's answer to the same input changes between samples.

Measured answers are greedy, so they never change; in production, a sampled model's do. With
`--repeats N`, each candidate answers a seeded subset of the test examples N more times with
sampled decoding (temperature 0.7, seeds seed+1..seed+N). An example is flaky when its N sampled
answers are not all the same; its flakiness is the share of samples that differ from its most
common answer. Label candidates sample the label from their own label probabilities, which is
what sampled decoding of a label would do, without another model call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunewise.evaluation import MetricValue
from tunewise.evaluation.graded import Judging, metric_value
from tunewise.evaluation.stats import mean_with_ci
from tunewise.inference.cache import ResponseCache
from tunewise.inference.predict import Prediction, predict
from tunewise.inference.predictor import Predictor
from tunewise.models.backend import Sampling
from tunewise.task.config import Task
from tunewise.task.data import Example, sample_examples, stratify_by_label

TEMPERATURE = 0.7
SUBSET = 60
MOST_FLAKY = 10


@dataclass(frozen=True)
class Flakiness:
    repeats: int
    temperature: float
    metric: str
    quality: list[float]  # the metric on the subset, one value per sample
    flaky: MetricValue  # share of examples whose samples disagree
    per_example: dict[str, float]  # example id -> share of samples off its most common answer

    def to_dict(self) -> dict[str, Any]:
        ranked = sorted(self.per_example.items(), key=lambda item: -item[1])
        return {
            "repeats": self.repeats,
            "temperature": self.temperature,
            "examples": len(self.per_example),
            "metric": self.metric,
            "quality": [round(q, 4) for q in self.quality],
            "flaky_examples": self.flaky.to_dict(),
            "mean_flakiness": round(float(np.mean(list(self.per_example.values()))), 4),
            "most_flaky": [
                {"example_id": example, "flakiness": round(value, 4)}
                for example, value in ranked[:MOST_FLAKY]
                if value > 0
            ],
        }


def example_flakiness(samples: Sequence[str]) -> float:
    """Share of the samples that differ from the most common one (0 when all agree)."""
    counts = Counter(s.strip() for s in samples)
    return 1 - counts.most_common(1)[0][1] / len(samples)


def measure_flakiness(
    task: Task,
    predictor: Predictor,
    *,
    measured: dict[str, Prediction],
    test: Sequence[Example],
    cache: ResponseCache,
    advance: Callable[[int], None],
    metric: str,
    repeats: int,
    judge: Judging | None = None,
) -> Flakiness | None:
    """None when there is nothing to sample from (a label candidate without probabilities)."""
    output_format = task.contract.output_format
    subset = sample_examples(list(test), SUBSET, task.seed, stratify_by_label(output_format))
    samples: list[list[str]] = []
    for r in range(1, repeats + 1):
        if output_format.type == "label":
            rng = np.random.default_rng(task.seed + r)
            drawn = [_draw(measured[e.id], rng) for e in subset]
            if None in drawn:
                return None
            samples.append([d for d in drawn if d is not None])
            advance(len(subset))
            continue
        predictions = predict(
            predictor,
            subset,
            output_format,
            cache,
            max_new_tokens=task.max_new_tokens or 0,
            advance=advance,
            sampling=Sampling(TEMPERATURE, task.seed + r),
        )
        samples.append([p.output for p in predictions])
    name = predictor.name
    quality = [
        metric_value(task, metric, answers, subset, judge=judge, candidate=f"{name} sample {r}")
        for r, answers in enumerate(samples, start=1)
    ]
    per_example = {
        e.id: example_flakiness([sample[i] for sample in samples]) for i, e in enumerate(subset)
    }
    flaky = mean_with_ci(np.array([float(v > 0) for v in per_example.values()]), seed=task.seed)
    return Flakiness(repeats, TEMPERATURE, metric, quality, flaky, per_example)


def _draw(prediction: Prediction, rng: np.random.Generator) -> str | None:
    probabilities = prediction.probabilities
    if not probabilities:
        return None
    labels = list(probabilities)
    weights = np.array([probabilities[label] for label in labels], dtype=float)
    return str(rng.choice(labels, p=weights / weights.sum()))
