"""Which languages the inputs (and answers) are in, with lingua.

The detector is built once per process from LANGUAGES, in lingua's high-accuracy mode, and
answers "unknown" unless the best language leads the next by a relative distance of 0.1.
Measured on 1,350 quotes in 9 languages (Debian's fortunes packages), 2 CPU cores: the share
detected right, and in brackets the share left undecided ("unknown").

| detector                 | whole quote  | first 8 words | first 3 words | first use | memory  |
|--------------------------|--------------|---------------|---------------|-----------|---------|
| 33, high, 0.1 (the one)  | 97.4% (1.5%) | 83.9% (14.5%) | 64.4% (31.6%) | ~8 s      | 0.7 GB  |
| 33, high accuracy        | 97.9%        | 85.9%         | 76.1%         | ~9 s      | 0.75 GB |
| 33, low accuracy         | 96.8%        | 82.4% (11.1%) | 64.1% (11.4%) | ~0.7 s    | 80 MB   |
| all 75, high accuracy    | 97.6%        | 85.0%         | 71.8%         | ~11-19 s  | 1.2 GB  |
| all 75, low accuracy     | 94.5%        | -             | 55.3% (11.4%) | ~1.3 s    | 130 MB  |

Task inputs and answers are often a sentence or a few words. There, a wrong language is worse
than none: it raises a false "test has a language train lacks" or "answer in the wrong
language", while "unknown" is left out of both. With the 0.1 distance, 98% of the languages it
names for 8-word snippets are right (94% for 3 words), against 86% (76%) without. High accuracy
is worth its one-off seconds on short text; all 75 languages cost more and confuse close pairs
(Bokmal and Nynorsk, Malay and Indonesian, Bosnian, Croatian and Serbian). A text in a language
outside the set is reported as its closest member, or "unknown".
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from lingua import IsoCode639_1, IsoCode639_3, Language, LanguageDetector, LanguageDetectorBuilder

from tunewise.checks.characters import IDS_SHOWN, Text, id_list, script_of
from tunewise.evaluation.stats import mean_with_ci

# 33 widely used languages; the module docstring says why not all 75.
_CODES = "en de fr es it pt nl pl cs sk sv da nb fi ru uk bg tr ar he fa hi bn zh ja ko vi th id el"
_CODES += " hu ro ca"
LANGUAGES = tuple(_CODES.split())
MIN_RELATIVE_DISTANCE = 0.1  # below it the detector says "unknown" (see the table above)
UNKNOWN = "unknown"
UNDETERMINED = "undetermined"
# A share of the test split this far (absolute) from train's share is a shift worth a look.
MAX_SHARE_DIFFERENCE = 0.10
# An answer is language-bearing with 3+ words of letters, or 4+ letters of a script written
# without spaces; labels, numbers, names and short JSON values are not.
MIN_WORDS = 3
MIN_UNSPACED_LETTERS = 4
UNSPACED_SCRIPTS = frozenset(
    {"CJK", "Hiragana", "Katakana", "Thai", "Lao", "Khmer", "Myanmar", "Tibetan"}
)
_WORD = re.compile(r"[^\W\d_]+")


@lru_cache(maxsize=1)
def detector() -> LanguageDetector:
    """The process's one detector (models load lazily, per script, on first use)."""
    codes = [getattr(IsoCode639_1, code.upper()) for code in LANGUAGES]
    builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
    return builder.with_minimum_relative_distance(MIN_RELATIVE_DISTANCE).build()


# Detections of this process by text: a run's risk checks and its drift breakdown look at the
# same test inputs, and the detector is deterministic, so the second look is free.
_detected: dict[str, str] = {}
_REMEMBERED = 200_000  # texts; a long-lived process starts over past this


def detect_languages(texts: Sequence[str]) -> list[str]:
    """ISO 639-1 code of each text's language, "unknown" where the detector cannot tell."""
    new = list(dict.fromkeys(t for t in texts if t not in _detected))
    if new:
        if len(_detected) + len(new) > _REMEMBERED:
            _detected.clear()
        found = detector().detect_languages_in_parallel_of(new)
        codes = [UNKNOWN if lang is None else lang.iso_code_639_1.name.lower() for lang in found]
        _detected.update(zip(new, codes, strict=True))
    return [_detected[t] for t in texts]


def detect_output_languages(texts: Sequence[str]) -> list[str]:
    """Like detect_languages for answers, but "undetermined" for those that carry no language:
    JSON answers are judged by their string values, and labels, numbers and other answers of
    too few words are undetermined, as is anything the detector cannot decide."""
    prose = [_language_bearing(text) for text in texts]
    detected = iter(detect_languages([p for p in prose if p is not None]))
    codes = [UNDETERMINED if p is None else next(detected) for p in prose]
    return [UNDETERMINED if code == UNKNOWN else code for code in codes]


def _language_bearing(text: str) -> str | None:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        value = text
    joined = " ".join(_strings(value))
    words = _WORD.findall(joined)
    unspaced = sum(1 for char in joined if script_of(char) in UNSPACED_SCRIPTS)
    return joined if len(words) >= MIN_WORDS or unspaced >= MIN_UNSPACED_LETTERS else None


def _strings(value: Any) -> list[str]:
    """The string values of a JSON value (keys are schema, not language)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def normalize_tag(tag: Any) -> str | None:
    """A gold language tag as an ISO 639-1 code: accepts "de", "de-AT", "pt_BR", "deu",
    "German"; None for anything else."""
    if not isinstance(tag, str) or not tag.strip():
        return None
    value = re.split(r"[-_]", tag.strip())[0]
    try:
        if len(value) == 2:
            return str(IsoCode639_1.from_str(value).name.lower())
        if len(value) == 3:
            language = Language.from_iso_code_639_3(IsoCode639_3.from_str(value))
        else:
            language = Language.from_str(value)
    except ValueError:
        return None
    return str(language.iso_code_639_1.name.lower())


def shares(codes: Sequence[str]) -> dict[str, float]:
    counts = Counter(codes)
    return {code: round(n / len(codes), 4) for code, n in counts.most_common()}


def language_mix(train: Sequence[str], test: Sequence[str]) -> dict[str, Any]:
    """Language shares of train and test; the languages test has and train lacks; and the
    languages whose share differs by MAX_SHARE_DIFFERENCE or more ("unknown" never flags)."""
    train_shares, test_shares = shares(train), shares(test)
    test_only = sorted(set(test) - set(train) - {UNKNOWN})
    differences = {
        code: round(test_shares.get(code, 0.0) - train_shares.get(code, 0.0), 4)
        for code in sorted(set(train_shares) | set(test_shares))
        if code != UNKNOWN
    }
    return {
        "train": {"n": len(train), "shares": train_shares},
        "test": {"n": len(test), "shares": test_shares},
        "test_only": test_only,
        "shifted": {c: d for c, d in differences.items() if abs(d) >= MAX_SHARE_DIFFERENCE},
    }


def gold_accuracy(
    tags: Sequence[Any], detected: Sequence[str], *, seed: int = 0
) -> dict[str, Any] | None:
    """The detector's accuracy against the examples' own language tags; None without tags."""
    pairs = [(normalize_tag(tag), found) for tag, found in zip(tags, detected, strict=True)]
    tagged = [(gold, found) for (gold, found), tag in zip(pairs, tags, strict=True) if tag]
    if not tagged:
        return None
    usable = [(gold, found) for gold, found in tagged if gold is not None]
    confusions = Counter(f"{g}->{f}" for g, f in usable if g != f)
    accuracy = None
    if usable:
        hits = np.array([gold == found for gold, found in usable], dtype=float)
        accuracy = mean_with_ci(hits, seed=seed).to_dict()
    return {
        "accuracy": accuracy,
        "unrecognised_tags": len(tagged) - len(usable),
        "confusions": dict(confusions.most_common(IDS_SHOWN)),
    }


def language_findings(
    train: Sequence[Text], test: Sequence[Text], *, seed: int = 0
) -> dict[str, Any]:
    """The language mix of train vs test inputs, the test ids in languages train lacks, and the
    detector's accuracy where examples carry a gold `language` tag."""
    detected = detect_languages([t.text for t in [*train, *test]])
    train_codes, test_codes = detected[: len(train)], detected[len(train) :]
    mix = language_mix(train_codes, test_codes)
    lacking = set(mix["test_only"])
    unseen = [t.id for t, code in zip(test, test_codes, strict=True) if code in lacking]
    tags = [t.language for t in [*train, *test]]
    return {
        "detector": {
            "library": "lingua",
            "mode": "high accuracy",
            "minimum_relative_distance": MIN_RELATIVE_DISTANCE,
            "languages": list(LANGUAGES),
        },
        **mix,
        "test_only_ids": id_list(unseen),
        "gold": gold_accuracy(tags, detected, seed=seed),
    }


def language_breakdown(
    input_languages: Sequence[str],
    output_texts: Sequence[str],
    scores: Sequence[float],
    *,
    expected_output_languages: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Quality by input language, and how often answers come in the expected language.

    Per language: n, the mean score with its bootstrap 95% CI, and the rate of answers in the
    expected language. Overall: that rate with its CI and n, where answers that carry no
    language (labels, numbers, too short: "undetermined") and answers whose expected language
    is unknown are left out and counted. `expected_output_languages` defaults to each input's
    language. The drop is the best language's mean minus each other's ("unknown" inputs are
    not a language and are left out of it)."""
    n = len(input_languages)
    if not (len(output_texts) == len(scores) == n):
        raise ValueError("input_languages, output_texts and scores must have the same length")
    expected = list(expected_output_languages or input_languages)
    if len(expected) != n:
        raise ValueError("expected_output_languages must have one language per input")
    found = detect_output_languages(output_texts)
    values = np.asarray(scores, dtype=float)
    per_language = {}
    for code in sorted(set(input_languages), key=lambda c: (-input_languages.count(c), c)):
        rows = [i for i, lang in enumerate(input_languages) if lang == code]
        per_language[code] = {
            "n": len(rows),
            "score": mean_with_ci(values[rows], seed=seed).to_dict(),
            "in_expected_language": _rate(
                [expected[i] for i in rows], [found[i] for i in rows], seed
            ),
        }
    return {
        "languages": per_language,
        "in_expected_language": _rate(expected, found, seed),
        "drop": _drops(per_language),
    }


def _rate(expected: Sequence[str], found: Sequence[str], seed: int) -> dict[str, Any]:
    pairs = list(zip(expected, found, strict=True))
    judged = [(e, f) for e, f in pairs if f != UNDETERMINED and e not in {UNKNOWN, UNDETERMINED}]
    rate = None
    if judged:
        rate = mean_with_ci(np.array([e == f for e, f in judged], dtype=float), seed=seed).to_dict()
    return {
        "rate": rate,
        "undetermined": sum(1 for _, f in pairs if f == UNDETERMINED),
        "expected_unknown": sum(
            1 for e, f in pairs if f != UNDETERMINED and e in {UNKNOWN, UNDETERMINED}
        ),
    }


def _drops(per_language: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    means = {code: row["score"]["value"] for code, row in per_language.items() if code != UNKNOWN}
    if len(means) < 2:
        return None
    best = max(means, key=lambda code: (means[code], code))
    drops = {code: round(means[best] - mean, 4) for code, mean in means.items() if code != best}
    worst = max(drops, key=lambda code: (drops[code], code))
    return {"best": best, "drops": drops, "largest": {"language": worst, "drop": drops[worst]}}
