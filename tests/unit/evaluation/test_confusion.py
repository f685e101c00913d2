"""confusion(): the matrix and per-class figures agree with counting by hand."""

from __future__ import annotations

import pytest

from tunewise.evaluation.confusion import OTHER, confusion
from tunewise.evaluation.metrics import macro_f1

LABELS = ["positive", "negative", "neutral"]


def test_counts_and_per_class_figures() -> None:
    references = ["positive", "positive", "negative", "neutral", "neutral", "neutral"]
    predictions = ["positive", "negative", "negative", "positive", "maybe", "negative"]
    table = confusion(predictions, references, LABELS)
    assert table["columns"] == [*LABELS, OTHER]
    assert table["matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 1, 0, 1]]
    neutral = table["per_class"]["neutral"]
    # Never predicted correctly: what the report must make visible.
    assert neutral == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 3, "predicted": 0}
    negative = table["per_class"]["negative"]
    assert negative["precision"] == pytest.approx(1 / 3, abs=1e-4) and negative["recall"] == 1.0
    f1s = [c["f1"] for c in table["per_class"].values()]
    assert sum(f1s) / 3 == pytest.approx(macro_f1(predictions, references, LABELS), abs=1e-3)
