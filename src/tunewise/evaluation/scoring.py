"""Score a candidate's answers: the metrics of the output format, each with a bootstrap CI.

The metric names per format are tunewise.task.config.METRICS_BY_FORMAT; the tests hold this
module to them. It does not import tunewise.task.config at runtime, so task loading may import
the evaluation package without a cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tunewise.evaluation.metrics import (
    contains_answer,
    encode_labels,
    exact_match,
    field_counts,
    field_f1_from_counts,
    json_exact_match,
    label_correct,
    macro_f1_from_codes,
    parse_json,
    rouge_l,
    token_f1,
)
from tunewise.evaluation.stats import MetricValue, bootstrap_ci, mean_with_ci
from tunewise.evaluation.validators import validate

if TYPE_CHECKING:
    from tunewise.task.config import JsonFormat, LabelFormat, OutputFormat


def score(
    output_format: OutputFormat,
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    seed: int,
    resamples: int = 1000,
) -> dict[str, MetricValue]:
    """The format's metrics over paired predictions and references, with seeded 95% CIs."""
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions but {len(references)} references; they must pair up"
        )
    if not predictions:
        raise ValueError("nothing to score: no predictions")
    valid = np.array([validate(output_format, p) is None for p in predictions], dtype=float)
    validity = mean_with_ci(valid, seed=seed, resamples=resamples)
    if output_format.type == "label":
        metrics = _score_label(output_format, predictions, references, seed, resamples)
    elif output_format.type == "json":
        metrics = _score_json(output_format, predictions, references, seed, resamples)
    elif output_format.type == "text":
        metrics = _score_text(predictions, references, seed, resamples)
    else:
        raise ValueError(f"unknown output format type: {output_format.type!r}")
    return {**metrics, "format_validity": validity}


def _score_label(
    output_format: LabelFormat,
    predictions: Sequence[str],
    references: Sequence[str],
    seed: int,
    resamples: int,
) -> dict[str, MetricValue]:
    labels = output_format.labels
    pred_codes = encode_labels(predictions, labels)
    ref_codes = encode_labels(references, labels)

    def statistic(idx: np.ndarray) -> float:
        return macro_f1_from_codes(pred_codes[idx], ref_codes[idx], len(labels))

    n = len(predictions)
    low, high = bootstrap_ci(statistic, n, seed=seed, resamples=resamples)
    macro = MetricValue(statistic(np.arange(n)), low, high, n)
    correct = label_correct(predictions, references)
    return {"accuracy": mean_with_ci(correct, seed=seed, resamples=resamples), "macro_f1": macro}


def _score_text(
    predictions: Sequence[str], references: Sequence[str], seed: int, resamples: int
) -> dict[str, MetricValue]:
    pairs = list(zip(predictions, references, strict=True))
    em = np.array([exact_match(p, r) for p, r in pairs])
    f1 = np.array([token_f1(p, r) for p, r in pairs])
    contained = np.array([contains_answer(p, r) for p, r in pairs], dtype=float)
    lcs = np.array([rouge_l(p, r) for p, r in pairs])
    return {
        "exact_match": mean_with_ci(em, seed=seed, resamples=resamples),
        "token_f1": mean_with_ci(f1, seed=seed, resamples=resamples),
        "contains_answer": mean_with_ci(contained, seed=seed, resamples=resamples),
        "rouge_l": mean_with_ci(lcs, seed=seed, resamples=resamples),
    }


def _score_json(
    output_format: JsonFormat,
    predictions: Sequence[str],
    references: Sequence[str],
    seed: int,
    resamples: int,
) -> dict[str, MetricValue]:
    pairs = list(zip(predictions, references, strict=True))
    counts = np.array([field_counts(p, r) for p, r in pairs], dtype=np.int64).reshape(-1, 3)

    # Micro F1: sum tp/fp/fn over the (resampled) examples, then one F1.
    def statistic(idx: np.ndarray) -> float:
        tp, fp, fn = counts[idx].sum(axis=0)
        return field_f1_from_counts(int(tp), int(fp), int(fn))

    n = len(pairs)
    low, high = bootstrap_ci(statistic, n, seed=seed, resamples=resamples)
    em = np.array([json_exact_match(p, r) for p, r in pairs])
    parsed = np.array([parse_json(p)[0] for p in predictions], dtype=float)
    return {
        "field_f1": MetricValue(statistic(np.arange(n)), low, high, n),
        "exact_match": mean_with_ci(em, seed=seed, resamples=resamples),
        "json_validity": mean_with_ci(parsed, seed=seed, resamples=resamples),
    }


def per_example(output_format: OutputFormat, prediction: str, reference: str) -> dict[str, float]:
    """One example's scores, as a predictions.jsonl line shows them."""
    valid = float(validate(output_format, prediction) is None)
    if output_format.type == "label":
        correct = float(prediction.strip() == reference.strip())
        return {"correct": correct, "valid": valid}
    if output_format.type == "json":
        tp, fp, fn = field_counts(prediction, reference)
        return {
            "field_f1": field_f1_from_counts(tp, fp, fn),
            "exact_match": json_exact_match(prediction, reference),
            "valid": valid,
        }
    if output_format.type == "text":
        return {
            "exact_match": exact_match(prediction, reference),
            "token_f1": token_f1(prediction, reference),
            "contains_answer": float(contains_answer(prediction, reference)),
            "rouge_l": rouge_l(prediction, reference),
            "valid": valid,
        }
    raise ValueError(f"unknown output format type: {output_format.type!r}")


# results.json metric -> per-example score key; macro F1 has no per-example value, so
# accuracy stands in for it.
_PER_EXAMPLE_KEY = {"accuracy": "correct", "macro_f1": "correct", "format_validity": "valid"}


def example_scores(
    output_format: OutputFormat, metric: str, outputs: Sequence[str], references: Sequence[str]
) -> list[float]:
    """Each answer's score on `metric` (accuracy for macro_f1, field F1 for micro field_f1)."""
    if metric == "json_validity":
        return [float(parse_json(o)[0]) for o in outputs]
    key = _PER_EXAMPLE_KEY.get(metric, metric)
    rows = [per_example(output_format, o, r) for o, r in zip(outputs, references, strict=True)]
    return [float(row[key]) for row in rows]
