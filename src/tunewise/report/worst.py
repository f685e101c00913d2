"""The worst test answers of each candidate, by the per-example scores in predictions.jsonl."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Lower is worse; later keys break ties. Label tasks show incorrect answers only.
ERROR_KEYS = {
    "label": ("correct",),
    "text": ("token_f1", "contains_answer"),
    "json": ("field_f1",),
}
SHOWN = 5
TEXT_LIMIT = 300


@dataclass(frozen=True)
class ErrorExample:
    """One poor answer; every text field is untrusted (dataset or model output)."""

    example_id: str
    score: str
    input: str
    reference: str
    output: str
    invalid_reason: str | None
    sources: list[str]


def truncate(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def worst_errors(
    output_format: str, candidate: str, predictions: list[dict[str, Any]]
) -> list[ErrorExample]:
    """Up to five test answers with the lowest scores; perfect answers are never errors."""
    # Older runs wrote no split field: every line was a test answer then.
    lines = [
        p
        for p in predictions
        if p.get("candidate") == candidate and p.get("split", "test") == "test"
    ]
    keys = _keys(output_format, lines)
    if not keys:
        return []

    def score(line: dict[str, Any]) -> tuple[float, ...]:
        return tuple(float(line["scores"].get(key, 0.0)) for key in keys)

    poor = [p for p in lines if min(score(p)) < 1.0]
    poor.sort(key=score)  # stable: ties keep the test file's order
    return [_example(p, keys) for p in poor[:SHOWN]]


def _keys(output_format: str, lines: list[dict[str, Any]]) -> tuple[str, ...]:
    present = {key for p in lines for key in p.get("scores", {})}
    wanted = tuple(k for k in ERROR_KEYS.get(output_format, ()) if k in present)
    if wanted:
        return wanted
    # Unknown format or renamed scores: fall back to any score but the validity flag.
    return tuple(sorted(present - {"valid"}))[:1]


def _example(line: dict[str, Any], keys: tuple[str, ...]) -> ErrorExample:
    scores = line.get("scores", {})
    return ErrorExample(
        example_id=str(line.get("example_id", "?")),
        score=", ".join(f"{key} {float(scores.get(key, 0.0)):.2f}" for key in keys),
        input=truncate(str(line.get("input", ""))),
        reference=truncate(str(line.get("reference", ""))),
        output=truncate(str(line.get("output", ""))),
        invalid_reason=line.get("invalid_reason"),
        sources=[str(s) for s in line.get("sources") or []],
    )
