"""Constrained decoding with the real embedded model: every finished answer follows the JSON
Schema, free decoding of the same prompts does not, and the two are cached apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunewise.evaluation import validate
from tunewise.models.constrained import ConstrainedModel, grammar_for
from tunewise.models.local import LocalModel
from tunewise.models.weights import EMBEDDED_NAME
from tunewise.task.config import JsonFormat, TextFormat

pytestmark = pytest.mark.integration

ADDRESS = JsonFormat.model_validate(
    {
        "type": "json",
        "schema": {
            "type": "object",
            "additionalProperties": False,
            "required": ["city", "state"],
            "properties": {
                "address_number": {"type": "string"},
                "city": {"type": "string"},
                "state": {"type": "string", "enum": ["MA", "IL", "CA"]},
            },
        },
    }
)


def conversation(text: str) -> list[dict[str, str]]:
    system = "Split the US address into address_number, city and state. Reply with JSON only."
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


def test_constrained_answers_follow_the_schema_where_free_ones_do_not(
    converted_home: Path,
) -> None:
    model = LocalModel(EMBEDDED_NAME, converted_home / "models" / EMBEDDED_NAME, converted_home)
    grammar = grammar_for(ADDRESS)
    assert grammar is not None
    constrained = ConstrainedModel(model, grammar)
    batch = [
        conversation(text)
        for text in ("123 Main St, Boston MA 02110", "9 Elm Road, Springfield IL", "1 Market St")
    ]
    free = model.generate(batch, max_new_tokens=48)
    masked = constrained.generate(batch, max_new_tokens=48)
    assert any(validate(ADDRESS, g.text) for g in free)  # the small model strays when free
    for answer in masked:
        assert answer.finish_reason == "stop", answer.text
        assert validate(ADDRESS, answer.text) is None, answer.text
        assert json.loads(answer.text)["state"] in {"MA", "IL", "CA"}
    assert constrained.fingerprint() != model.fingerprint()
    assert constrained.count_tokens(batch[0]) == model.count_tokens(batch[0])


def test_a_text_pattern_constrains_generation(converted_home: Path) -> None:
    model = LocalModel(EMBEDDED_NAME, converted_home / "models" / EMBEDDED_NAME, converted_home)
    code = TextFormat(type="text", pattern=r"[A-Z]{3}")
    grammar = grammar_for(code)
    assert grammar is not None
    messages = [{"role": "user", "content": "What is the ISO 4217 currency code of Japan?"}]
    [answer] = ConstrainedModel(model, grammar).generate([messages], max_new_tokens=8)
    assert validate(code, answer.text) is None, answer.text
