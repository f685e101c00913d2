from __future__ import annotations

import pytest

from tunewise.evaluation.validators import validate
from tunewise.task.config import JsonFormat, LabelFormat, TextFormat, check_schema

LABELS = LabelFormat(type="label", labels=["positive", "negative", "neutral"])
PERSON = JsonFormat.model_validate(
    {
        "type": "json",
        "schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer", "minimum": 0},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["name", "age"],
            "additionalProperties": False,
        },
    }
)


@pytest.mark.parametrize("text", ["positive", "  neutral\n"])
def test_label_valid(text: str) -> None:
    assert validate(LABELS, text) is None


@pytest.mark.parametrize("text", ["Positive", "positive.", "pos", "positive negative"])
def test_label_invalid(text: str) -> None:
    assert validate(LABELS, text) == "not one of the labels: positive, negative, neutral"


@pytest.mark.parametrize("fmt", [LABELS, PERSON, TextFormat(type="text")])
@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_answer(fmt: LabelFormat | JsonFormat | TextFormat, text: str) -> None:
    assert validate(fmt, text) == "empty answer"


def test_json_valid_plain_and_fenced() -> None:
    assert validate(PERSON, '{"name": "Ada", "age": 36}') is None
    assert validate(PERSON, '```json\n{"name": "Ada", "age": 36, "tags": ["x"]}\n```') is None


def test_json_not_valid_json() -> None:
    reason = validate(PERSON, "{name: Ada}")
    assert reason is not None
    assert reason.startswith("not valid JSON: Expecting property name enclosed in double quotes")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"name": "Ada", "age": "36"}', "at $.age: '36' is not of type 'integer'"),
        ('{"name": "Ada", "age": -1}', "at $.age: -1 is less than the minimum of 0"),
        ('{"name": "Ada"}', "at $: 'age' is a required property"),
        ('{"name": "Ada", "age": 1, "tags": [3]}', "at $.tags[0]: 3 is not of type 'string'"),
        ("[1]", "at $: [1] is not of type 'object'"),
    ],
)
def test_json_schema_mismatch(text: str, reason: str) -> None:
    assert validate(PERSON, text) == f"JSON does not match the schema {reason}"


def test_json_empty_schema_accepts_any_json() -> None:
    fmt = JsonFormat(type="json")
    assert validate(fmt, "[1, 2]") is None
    assert validate(fmt, "not json") is not None


def test_json_format_keyword_is_enforced() -> None:
    fmt = JsonFormat.model_validate(
        {"type": "json", "schema": {"type": "string", "format": "date"}}
    )
    assert validate(fmt, '"2024-02-29"') is None
    assert validate(fmt, '"yesterday"') == (
        "JSON does not match the schema at $: 'yesterday' is not a 'date'"
    )


def test_text_length_limit() -> None:
    fmt = TextFormat(type="text", max_chars=5)
    assert validate(fmt, "abcde\n") is None
    assert validate(fmt, "abcdef") == "longer than 5 characters"
    assert validate(TextFormat(type="text"), "x" * 10_000) is None


def test_check_schema() -> None:
    assert check_schema(PERSON.json_schema) is None
    assert check_schema({}) is None
    assert check_schema({"properties": {"a": {"type": "nope"}}}) == (
        "invalid JSON Schema at $.properties.a.type: 'nope' is not valid under any of the "
        "given schemas"
    )
    reason = check_schema({"type": "object", "required": "name"})
    assert reason is not None
    assert reason.startswith("invalid JSON Schema at $.required:")
