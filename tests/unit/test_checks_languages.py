"""Language checks: detection (real lingua detector), the train/test mix, accuracy against gold
tags, and the per-language breakdown of scores and answer languages."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tunewise.checks import languages
from tunewise.checks.characters import Text
from tunewise.checks.languages import (
    detect_languages,
    detect_output_languages,
    detector,
    gold_accuracy,
    language_breakdown,
    language_findings,
    language_mix,
    normalize_tag,
)
from tunewise.evaluation.stats import mean_with_ci

EN = "The blender is quiet and it crushes ice in a few seconds."
EN2 = "I returned it because the lid cracked after one week of use."
DE = "Der Mixer ist leise und zerkleinert Eis in wenigen Sekunden."
DE2 = "Ich habe ihn zurückgegeben, weil der Deckel nach einer Woche gerissen ist."
ES = "La licuadora es silenciosa y tritura el hielo en pocos segundos."
RU = "Блендер работает тихо и измельчает лёд за несколько секунд."
ZH = "这个搅拌机很安静\uff0c几秒钟就能把冰块打碎。"


def test_detect_languages_gives_iso_codes_or_unknown() -> None:
    found = detect_languages([EN, DE, ES, RU, ZH, "", "12345 !!!"])
    assert found == ["en", "de", "es", "ru", "zh", "unknown", "unknown"]
    assert detect_languages([]) == []
    assert detector() is detector()  # built once per process


def test_detect_languages_asks_the_detector_once_per_text(monkeypatch: pytest.MonkeyPatch) -> None:
    real = detector()
    asked: list[list[str]] = []

    class Counting:
        def detect_languages_in_parallel_of(self, texts: list[str]) -> list[object]:
            asked.append(texts)
            return real.detect_languages_in_parallel_of(texts)

    monkeypatch.setattr(languages, "_detected", {})
    monkeypatch.setattr(languages, "detector", lambda: Counting())
    assert detect_languages([EN, DE, EN]) == ["en", "de", "en"]
    assert detect_languages([DE2, DE, EN]) == ["de", "de", "en"]
    assert asked == [[EN, DE], [DE2]]


@pytest.mark.parametrize(
    ("answer", "language"),
    [
        ("positive", "undetermined"),  # a label
        ("42.5", "undetermined"),
        ("Berlin", "undetermined"),
        ('{"city": "Berlin", "zip": "10115"}', "undetermined"),  # short JSON values
        ('{"answer": "Das Wetter ist heute sehr schön und warm"}', "de"),  # keys do not count
        ("It was shipped on Tuesday morning.", "en"),
        ("这个搅拌机很安静", "zh"),  # no spaces: counted by characters
        ("!!! ??? ...", "undetermined"),
    ],
)
def test_output_languages_leave_bare_values_undetermined(answer: str, language: str) -> None:
    assert detect_output_languages([answer]) == [language]


@pytest.mark.parametrize(
    ("tag", "code"),
    [
        ("de", "de"),
        ("DE", "de"),
        ("de-AT", "de"),
        ("pt_BR", "pt"),
        ("deu", "de"),
        ("German", "de"),
        ("xx", None),
        ("Klingon", None),
        ("", None),
        (3, None),
    ],
)
def test_normalize_tag(tag: object, code: str | None) -> None:
    assert normalize_tag(tag) == code


def test_language_mix_flags_test_only_languages_and_shifts() -> None:
    train = ["en"] * 9 + ["unknown"]
    test = ["en"] * 6 + ["de"] * 3 + ["unknown"]
    mix = language_mix(train, test)
    assert mix["train"] == {"n": 10, "shares": {"en": 0.9, "unknown": 0.1}}
    assert mix["test"]["shares"] == {"en": 0.6, "de": 0.3, "unknown": 0.1}
    assert mix["test_only"] == ["de"]
    assert mix["shifted"] == {"de": 0.3, "en": -0.3}
    same = language_mix(["en", "de"] * 5, ["de", "en"] * 5)
    assert same["test_only"] == [] and same["shifted"] == {}
    assert language_mix(["en"], ["unknown"])["test_only"] == []  # unknown is not a language


def test_gold_accuracy_against_tags() -> None:
    tags = ["en", "de", "German", "xx", None, "fr"]
    detected = ["en", "de", "de", "de", "en", "es"]
    gold = gold_accuracy(tags, detected, seed=0)
    assert gold is not None
    assert gold["accuracy"]["n"] == 4  # untagged and unrecognised tags left out
    assert gold["accuracy"]["value"] == 0.75
    assert gold["unrecognised_tags"] == 1
    assert gold["confusions"] == {"fr->es": 1}
    assert gold_accuracy([None, None], ["en", "de"]) is None


def test_language_findings_on_texts() -> None:
    train = [Text("a", "train", EN, "en"), Text("b", "train", EN2, "en")]
    test = [Text("c", "test", DE, "de"), Text("d", "test", EN, None), Text("e", "test", DE2)]
    found = language_findings(train, test)
    json.dumps(found)
    assert found["test_only"] == ["de"]
    assert found["test_only_ids"] == {"count": 2, "ids": ["c", "e"]}
    assert found["gold"]["accuracy"]["value"] == 1.0 and found["gold"]["accuracy"]["n"] == 3


def test_language_breakdown_scores_rates_and_drop() -> None:
    inputs = ["en", "en", "en", "de", "de", "unknown"]
    outputs = [
        EN,  # English answer to an English input
        EN2,
        "positive",  # a label: undetermined
        EN,  # English answer to a German input: wrong language
        DE,
        ES,
    ]
    scores = [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    result = language_breakdown(inputs, outputs, scores, seed=3)
    json.dumps(result)
    en, de = result["languages"]["en"], result["languages"]["de"]
    assert en["n"] == 3 and de["n"] == 2
    expected = mean_with_ci(np.array([1.0, 1.0, 0.0]), seed=3).to_dict()
    assert en["score"] == expected
    assert en["in_expected_language"]["rate"]["value"] == 1.0
    assert en["in_expected_language"]["undetermined"] == 1
    assert de["in_expected_language"]["rate"]["value"] == 0.5
    overall = result["in_expected_language"]
    assert overall["rate"]["n"] == 4 and overall["rate"]["value"] == 0.75
    assert overall["undetermined"] == 1 and overall["expected_unknown"] == 1
    drop = result["drop"]
    assert drop["best"] == "en"
    assert drop["largest"] == {"language": "de", "drop": pytest.approx(2 / 3 - 0.5, abs=1e-4)}
    assert "unknown" not in drop["drops"]


def test_language_breakdown_with_expected_output_languages() -> None:
    # Answers are meant to be English whatever the input's language (e.g. translation to en).
    result = language_breakdown(
        ["de", "es"], [EN, DE], [1.0, 0.0], expected_output_languages=["en", "en"]
    )
    assert result["in_expected_language"]["rate"]["value"] == 0.5
    assert result["languages"]["de"]["in_expected_language"]["rate"]["value"] == 1.0
    assert result["languages"]["es"]["in_expected_language"]["rate"]["value"] == 0.0


def test_language_breakdown_edge_cases() -> None:
    with pytest.raises(ValueError, match="same length"):
        language_breakdown(["en"], [EN, EN], [1.0])
    with pytest.raises(ValueError, match="one language per input"):
        language_breakdown(["en"], [EN], [1.0], expected_output_languages=["en", "de"])
    only = language_breakdown(["en", "en"], ["positive", "negative"], [1.0, 0.0])
    assert only["drop"] is None
    assert only["in_expected_language"] == {"rate": None, "undetermined": 2, "expected_unknown": 0}
