"""Multilingual drift: each candidate's quality per input language, how often its answers come
in the expected language, and the drop from its best language to the others.

An example's language is its gold `language` tag where the data has one, else lingua's
detection. The breakdown is measured only when the test inputs span two or more languages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunewise.checks.languages import UNKNOWN, detect_languages, language_breakdown, normalize_tag
from tunewise.evaluation.scoring import example_scores
from tunewise.inference.predict import Prediction
from tunewise.task.config import OutputFormat
from tunewise.task.data import Example


def example_languages(examples: Sequence[Example]) -> list[str]:
    """ISO 639-1 code per example: the gold tag when it has one, else the detected language."""
    tags = [normalize_tag(e.extra.get("language")) for e in examples]
    missing = [i for i, tag in enumerate(tags) if tag is None]
    detected = detect_languages([examples[i].input for i in missing])
    for i, code in zip(missing, detected, strict=True):
        tags[i] = code
    return [tag or UNKNOWN for tag in tags]


def _scores(
    output_format: OutputFormat,
    metric: str,
    predictions: Sequence[Prediction],
    examples: Sequence[Example],
) -> list[float]:
    # A graded metric (embedding similarity, a user metric) was scored once, when measured.
    if all(metric in p.graded for p in predictions):
        return [p.graded[metric] for p in predictions]
    outputs = [p.output for p in predictions]
    return example_scores(output_format, metric, outputs, [e.output for e in examples])


def drift(
    output_format: OutputFormat,
    metric: str,
    examples: Sequence[Example],
    candidates: Sequence[tuple[str, Sequence[Prediction]]],
    *,
    answer_language: str | None,
    trained_languages: dict[str, float] | None,
    seed: int,
) -> dict[str, Any] | None:
    """The per-language breakdown of every candidate; None for a one-language test set."""
    languages = example_languages(examples)
    known = {code for code in languages if code != UNKNOWN}
    if len(known) < 2:
        return None
    expected = [answer_language] * len(examples) if answer_language else None
    return {
        "metric": metric,
        "source": "gold tags" if all(e.extra.get("language") for e in examples) else "detected",
        "expected_answer_language": answer_language or "the input's",
        "trained_languages": trained_languages,
        "candidates": {
            name: language_breakdown(
                languages[: len(predictions)],  # a candidate stopped early answered a prefix
                [p.output for p in predictions],
                _scores(output_format, metric, predictions, examples[: len(predictions)]),
                expected_output_languages=expected[: len(predictions)] if expected else None,
                seed=seed,
            )
            for name, predictions in candidates
        },
    }
