"""Where a label candidate fails: its confusion matrix and per-class precision, recall and F1."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tunewise.evaluation.metrics import encode_labels

OTHER = "(other)"  # answers outside the label set


def confusion(
    predictions: Sequence[str], references: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Rows: the reference label; columns: the predicted one, plus OTHER for answers outside
    the set. Per class: precision (0 when never predicted), recall, F1 and support."""
    size = len(labels) + 1
    pred = encode_labels(predictions, labels)
    ref = encode_labels(references, labels)
    matrix = np.zeros((size, size), dtype=np.int64)
    np.add.at(matrix, (ref, pred), 1)
    matrix = matrix[: len(labels)]  # references are always in the set
    per_class = {}
    for i, label in enumerate(labels):
        hits = int(matrix[i, i])
        predicted = int(matrix[:, i].sum())
        support = int(matrix[i].sum())
        precision = hits / predicted if predicted else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * hits / (predicted + support) if predicted + support else 0.0
        per_class[label] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": support,
            "predicted": predicted,
        }
    return {
        "labels": list(labels),
        "columns": [*labels, OTHER],
        "matrix": matrix.tolist(),
        "per_class": per_class,
    }
