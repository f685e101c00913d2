"""Does an answer have the shape the contract asks for? One short reason when it does not."""

from __future__ import annotations

import re

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from tunewise.evaluation.metrics import load_json
from tunewise.task.config import JsonFormat, LabelFormat, OutputFormat, TextFormat


def validate(output_format: OutputFormat, text: str) -> str | None:
    """None when text is a valid answer for output_format, else a short human reason."""
    if not text.strip():
        return "empty answer"
    if output_format.type == "label":
        return _validate_label(output_format, text)
    if output_format.type == "json":
        return _validate_json(output_format, text)
    if output_format.type == "text":
        return _validate_text(output_format, text)
    raise ValueError(f"unknown output format type: {output_format.type!r}")


def _validate_label(output_format: LabelFormat, text: str) -> str | None:
    if text.strip() in output_format.labels:
        return None
    return f"not one of the labels: {', '.join(output_format.labels)}"


def _validate_json(output_format: JsonFormat, text: str) -> str | None:
    try:
        value = load_json(text)
    except ValueError as exc:
        return f"not valid JSON: {exc}"
    schema = output_format.json_schema
    cls = validator_for(schema, default=Draft202012Validator)
    # Formats (date, email, ...) are only annotations unless a checker is given; users who
    # write them expect them enforced.
    validator = cls(schema, format_checker=FormatChecker())
    error = best_match(validator.iter_errors(value))
    if error is None:
        return None
    return f"JSON does not match the schema at {error.json_path}: {error.message}"


def _validate_text(output_format: TextFormat, text: str) -> str | None:
    # Surrounding whitespace is not part of the answer; generations often end in a newline.
    answer = text.strip()
    limit = output_format.max_chars
    if limit is not None and len(answer) > limit:
        return f"longer than {limit} characters"
    pattern = output_format.pattern
    abstained = output_format.abstention is not None and answer == output_format.abstention
    if pattern is not None and not abstained and re.fullmatch(pattern, answer) is None:
        return f"does not match the pattern {pattern}"
    return None
