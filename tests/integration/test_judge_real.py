"""The embedded model as the judge: real grade probabilities, cached verdicts, counted tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunewise.inference.cache import ResponseCache
from tunewise.inference.judge import ModelJudge
from tunewise.models.local import LocalModel
from tunewise.models.weights import EMBEDDED_NAME
from tunewise.task.config import Contract
from tunewise.task.data import Example
from tunewise.task.judge_config import Judge

pytestmark = pytest.mark.integration

CONTRACT = Contract.model_validate(
    {
        "objective": "Write the one-line summary of a Python function's docstring.",
        "audience": "Python developers.",
        "source_material": "The function's source code.",
        "output_format": {"type": "text", "max_chars": 100},
    }
)
EXAMPLES = [
    Example(
        "a", "def size(self):\n    return len(self._items)", "Return the number of items.", "t:1"
    ),
    Example("b", "def close(self):\n    self._file.close()", "Close the file.", "t:2"),
]


@pytest.mark.parametrize("mode", ["pointwise", "pairwise"])
def test_the_embedded_model_judges_with_probabilities_and_the_cache(
    converted_home: Path, tmp_path: Path, mode: str
) -> None:
    model = LocalModel(EMBEDDED_NAME, converted_home / "models" / EMBEDDED_NAME, converted_home)
    config = Judge(mode=mode)
    with_cache = ResponseCache(tmp_path / "cache.sqlite")
    try:
        judge = ModelJudge(config, CONTRACT, model, with_cache, seed=0)
        outputs = ["Return the number of items.", "Close the file."]
        judge.grade("zero-shot", ["Items.", "It closes."], EXAMPLES)  # the pairwise baseline
        first = judge.grade("few-shot", outputs, EXAMPLES)
        again = judge.grade("few-shot", outputs, EXAMPLES)
    finally:
        with_cache.close()
    assert all(0.0 <= s <= 1.0 for s in first.scores) and first.scores == again.scores
    assert first.usage.input_tokens > 0 and first.usage.calls > 0 and again.usage.calls == 0
    if mode == "pointwise":
        probabilities = first.verdicts[0]["probabilities"]
        assert set(probabilities) == {"1", "2", "3", "4", "5"}
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    else:
        assert first.positions is not None and first.positions["pairs"] == 2
