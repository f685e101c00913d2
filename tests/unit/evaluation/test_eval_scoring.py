from __future__ import annotations

import json

import numpy as np
import pytest

from tunewise.evaluation import MetricValue, per_example, score
from tunewise.task.config import METRICS_BY_FORMAT, JsonFormat, LabelFormat, TextFormat

LABELS = LabelFormat(type="label", labels=["a", "b", "c", "d"])
TEXT = TextFormat(type="text", max_chars=20)
JSON = JsonFormat.model_validate(
    {
        "type": "json",
        "schema": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
    }
)


def _check_ci(metric: MetricValue, n: int) -> None:
    assert metric.n == n
    assert 0.0 <= metric.ci_low <= metric.value <= metric.ci_high <= 1.0


def test_label_scores() -> None:
    refs = ["a", "a", "b", "b", "c"] * 4
    preds = ["a", "b", "b", "x", "a"] * 4
    result = score(LABELS, preds, refs, seed=0)
    assert tuple(result) == METRICS_BY_FORMAT["label"]
    assert result["accuracy"].value == pytest.approx(2 / 5)
    assert result["macro_f1"].value == pytest.approx(1 / 3)  # d absent, c never predicted
    assert result["format_validity"].value == pytest.approx(4 / 5)  # x is not a label
    for metric in result.values():
        _check_ci(metric, 20)
    assert result["macro_f1"].ci_low < result["macro_f1"].ci_high


def test_text_scores() -> None:
    preds = ["The cat sat", "a dog", "", "far too long an answer here"]
    refs = ["cat sat", "dog barks", "bird", "far"]
    result = score(TEXT, preds, refs, seed=0)
    assert tuple(result) == METRICS_BY_FORMAT["text"]
    assert result["exact_match"].value == pytest.approx(1 / 4)
    # 1, F1(dog | dog barks) = 2/3, 0, F1(5 tokens, "an" dropped, vs 1, overlap 1) = 1/3
    assert result["token_f1"].value == pytest.approx((1 + 2 / 3 + 0 + 1 / 3) / 4)
    assert result["format_validity"].value == pytest.approx(2 / 4)
    for metric in result.values():
        _check_ci(metric, 4)


def test_json_scores() -> None:
    refs = ['{"x": 1, "y": 2}', '{"x": 3}', '{"x": 5, "y": [1, 2]}', '{"x": 7}']
    preds = ['{"y": 2.0, "x": 1}', '```json\n{"x": 4}\n```', "oops", '{"x": "7"}']
    result = score(JSON, preds, refs, seed=0)
    assert tuple(result) == METRICS_BY_FORMAT["json"]
    # counts: (2,0,0), (0,1,1), (0,0,3), (0,1,1) -> micro F1 = 4 / (4 + 2 + 5)
    assert result["field_f1"].value == pytest.approx(4 / 11)
    assert result["exact_match"].value == pytest.approx(1 / 4)
    assert result["json_validity"].value == pytest.approx(3 / 4)
    assert result["format_validity"].value == pytest.approx(2 / 4)  # "7" is not an integer
    for metric in result.values():
        _check_ci(metric, 4)


def test_field_f1_is_micro_not_mean_of_examples() -> None:
    refs = [json.dumps({f"k{i}": i for i in range(9)}), '{"x": 1}']
    preds = [refs[0], '{"x": 2}']
    result = score(JSON, preds, refs, seed=0)
    assert result["field_f1"].value == pytest.approx(18 / 20)  # mean of examples would be 0.5


def test_scoring_is_deterministic_for_a_seed() -> None:
    refs = ["a", "b", "c", "a", "b", "c", "a", "b"]
    preds = ["a", "b", "a", "a", "c", "c", "b", "b"]
    assert score(LABELS, preds, refs, seed=3) == score(LABELS, preds, refs, seed=3)
    assert score(LABELS, preds, refs, seed=3) != score(LABELS, preds, refs, seed=4)


def test_scoring_input_errors() -> None:
    with pytest.raises(ValueError, match="pair up"):
        score(LABELS, ["a"], ["a", "b"], seed=0)
    with pytest.raises(ValueError, match="nothing to score"):
        score(TEXT, [], [], seed=0)


def test_per_example_keys_and_values() -> None:
    assert per_example(LABELS, " a ", "a") == {"correct": 1.0, "valid": 1.0}
    assert per_example(LABELS, "z", "a") == {"correct": 0.0, "valid": 0.0}
    assert per_example(TEXT, "The cat", "cat sat") == {
        "exact_match": 0.0,
        "token_f1": pytest.approx(2 / 3),
        "contains_answer": 0.0,
        "rouge_l": pytest.approx(2 / 3),  # LCS "cat": P 1, R 1/2
        "valid": 1.0,
    }


def test_rouge_l_counts_word_order_where_token_f1_does_not() -> None:
    from tunewise.evaluation.metrics import rouge_l, token_f1

    # Normalised: "cat sat on mat" vs "cat was on mat": LCS "cat on mat", P = R = 3/4.
    assert rouge_l("The cat sat on the mat.", "the cat was on the mat") == pytest.approx(0.75)
    scrambled, reference = "mat on sat cat", "cat sat on mat"
    assert token_f1(scrambled, reference) == 1.0
    assert rouge_l(scrambled, reference) == pytest.approx(0.25)  # LCS of one word
    assert rouge_l("Привет, мир!", "привет мир") == 1.0  # not only ASCII words
    assert rouge_l("", "") == 1.0 and rouge_l("x", "") == 0.0 and rouge_l("", "x") == 0.0
    result = score(TEXT, ["cat sat on mat", "mat on sat cat"], [reference] * 2, seed=0)
    assert result["rouge_l"].value == pytest.approx(0.625) and result["rouge_l"].n == 2
    assert per_example(TEXT, "It is the cat, sat.", "cat sat")["contains_answer"] == 1.0
    assert per_example(JSON, '{"x": 1, "z": 0}', '{"x": 1, "y": 2}') == {
        "field_f1": pytest.approx(0.5),
        "exact_match": 0.0,
        "valid": 1.0,
    }


def test_per_example_means_match_score() -> None:
    refs = ['{"x": 1}', '{"x": 2}', '{"x": 3}']
    preds = ['{"x": 1}', "bad", '{"x": "3"}']
    rows = [per_example(JSON, p, r) for p, r in zip(preds, refs, strict=True)]
    result = score(JSON, preds, refs, seed=0)
    assert np.mean([row["exact_match"] for row in rows]) == pytest.approx(
        result["exact_match"].value
    )
    assert np.mean([row["valid"] for row in rows]) == pytest.approx(result["format_validity"].value)
