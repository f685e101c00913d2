from __future__ import annotations

import numpy as np
import pytest

from tunewise.evaluation.metrics import (
    canonical_json,
    exact_match,
    field_counts,
    field_f1_from_counts,
    json_exact_match,
    json_fields,
    label_correct,
    macro_f1,
    normalize_answer,
    parse_json,
    token_f1,
)


def _sklearn_macro_f1(preds: list[str], refs: list[str], labels: list[str]) -> float:
    """f1_score(average="macro", labels=labels, zero_division=0) written out by hand."""
    scores = []
    for label in labels:
        tp = sum(p == label and r == label for p, r in zip(preds, refs, strict=True))
        predicted = sum(p == label for p in preds)
        actual = sum(r == label for r in refs)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        total = precision + recall
        scores.append(2 * precision * recall / total if total else 0.0)
    return sum(scores) / len(scores)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Cat, sat!", "cat sat"),
        ("  An apple a day ", "apple day"),
        ("theory of Another", "theory of another"),  # articles only as whole words
        ("“Quoted” — text", "quoted text"),
        ("", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_exact_match_ignores_case_punctuation_and_articles() -> None:
    assert exact_match("The Eiffel Tower.", "eiffel tower") == 1.0
    assert exact_match("Eiffel Tower", "Eiffel") == 0.0


def test_token_f1_hand_computed() -> None:
    # pred tokens {cat, sat}, ref {cat, sat, down}: P = 1, R = 2/3, F1 = 0.8
    assert token_f1("the cat sat", "a cat sat down") == pytest.approx(0.8)
    # repeated tokens count by multiplicity: overlap 1, P = 1/2, R = 1, F1 = 2/3
    assert token_f1("cat cat", "cat") == pytest.approx(2 / 3)
    assert token_f1("dog", "cat") == 0.0


def test_token_f1_empty_answers() -> None:
    assert token_f1("", "") == 1.0
    assert token_f1("the", "") == 1.0  # normalises to empty on both sides
    assert token_f1("", "cat") == 0.0
    assert token_f1("cat", "") == 0.0


def test_label_correct_strips_and_is_exact() -> None:
    result = label_correct([" positive\n", "Positive", "negative"], ["positive"] * 3)
    assert result.tolist() == [1.0, 0.0, 0.0]
    assert result.dtype == np.float64


def test_label_correct_length_mismatch() -> None:
    with pytest.raises(ValueError, match="pair up"):
        label_correct(["a"], ["a", "b"])


def test_macro_f1_out_of_set_prediction_and_class_absent_from_predictions() -> None:
    labels = ["a", "b", "c", "d"]  # d occurs nowhere and must not count
    refs = ["a", "a", "b", "b", "c"]
    preds = ["a", "b", "b", "x", "a"]  # x is outside the label set; c is never predicted
    # a: tp 1, fp 1, fn 1 -> 0.5; b: tp 1, fp 1, fn 1 (x) -> 0.5; c: tp 0 -> 0. Mean = 1/3.
    assert macro_f1(preds, refs, labels) == pytest.approx(1 / 3)
    assert macro_f1(preds, refs, labels) == pytest.approx(
        _sklearn_macro_f1(preds, refs, ["a", "b", "c"])
    )


def test_macro_f1_label_only_in_predictions_counts_as_zero() -> None:
    # a: P 1, R 1/2 -> 2/3; b predicted but never true -> 0. Mean 1/3 (not 2/3).
    assert macro_f1(["a", "b"], ["a", "a"], ["a", "b", "c"]) == pytest.approx(1 / 3)


def test_macro_f1_matches_sklearn_formula_on_random_data() -> None:
    rng = np.random.default_rng(7)
    labels = ["x", "y", "z", "w"]
    pool = [*labels[:3], "junk"]  # w never occurs, junk is out of set
    refs = [str(v) for v in rng.choice(labels[:3], size=60)]
    preds = [str(v) for v in rng.choice(pool, size=60)]
    present = [label for label in labels if label in refs or label in preds]
    assert macro_f1(preds, refs, labels) == pytest.approx(_sklearn_macro_f1(preds, refs, present))


def test_macro_f1_perfect_and_whitespace() -> None:
    assert macro_f1([" a", "b\n"], ["a", "b"], ["a", "b"]) == 1.0


def test_parse_json_strict_and_fenced() -> None:
    assert parse_json(' {"a": 1} ') == (True, {"a": 1})
    assert parse_json('```json\n{"a": [1, 2]}\n```') == (True, {"a": [1, 2]})
    assert parse_json('```\n"plain fence"\n```') == (True, "plain fence")
    assert parse_json("{'a': 1}") == (False, None)
    assert parse_json('{"a": 1} trailing') == (False, None)
    assert parse_json("NaN") == (False, None)
    assert parse_json('Here you go: ```json\n{"a": 1}\n```') == (False, None)


def test_json_fields_flattens_nested_paths() -> None:
    value = {"a": {"b": [{"c": 1}, 2.0]}, "d": "x", "e": {}, "f": None, "g": True}
    assert json_fields(value) == {
        ("a.b[0].c", "1"),
        ("a.b[1]", "2"),  # 2.0 and 2 are the same JSON number
        ("d", '"x"'),
        ("e", "{}"),
        ("f", "null"),
        ("g", "true"),
    }
    assert json_fields([1, "a"]) == {("[0]", "1"), ("[1]", '"a"')}
    assert json_fields(3) == {("", "3")}


def test_canonical_json_keeps_bool_distinct_from_number() -> None:
    assert canonical_json({"b": 1.0, "a": [True]}) == '{"a":[true],"b":1}'
    assert canonical_json(1) != canonical_json(True)


def test_field_counts_hand_computed() -> None:
    pred = '{"a": 1, "b": 2, "e": 5}'
    ref = '{"a": 1, "b": 3, "c": 4}'
    # tp: a; fp: b=2, e=5; fn: b=3, c=4
    assert field_counts(pred, ref) == (1, 2, 2)
    assert field_f1_from_counts(1, 2, 2) == pytest.approx(2 / 6)


def test_field_counts_unparsable_prediction_misses_every_field() -> None:
    assert field_counts("not json", '{"a": 1, "b": {"c": [1, 2]}}') == (0, 0, 3)


def test_field_counts_rejects_unparsable_reference() -> None:
    with pytest.raises(ValueError, match="reference is not valid JSON"):
        field_counts("{}", "{oops")


def test_field_f1_from_counts_edges() -> None:
    assert field_f1_from_counts(0, 0, 0) == 1.0
    assert field_f1_from_counts(0, 3, 2) == 0.0
    assert field_f1_from_counts(4, 0, 0) == 1.0


def test_json_exact_match_is_canonical() -> None:
    assert json_exact_match('{"b": 1.0, "a": 2}', '```json\n{"a": 2, "b": 1}\n```') == 1.0
    assert json_exact_match('{"a": true}', '{"a": 1}') == 0.0
    assert json_exact_match("nope", '{"a": 1}') == 0.0
