"""Context assembly: the contract's system prompt, format instructions, demos as turns."""

from __future__ import annotations

import json
from typing import Any

from tunewise.inference.prompts import build_messages, format_instruction, system_prompt
from tunewise.task.config import Contract, JsonFormat, TextFormat
from tunewise.task.data import Example

LABELS = ["positive", "negative", "neutral"]


def contract(output_format: dict[str, Any] | None = None, **fields: str) -> Contract:
    values = {
        "objective": "Classify the sentiment of one review sentence.",
        "audience": "Support analysts.",
        "source_material": "The sentence only.",
        **fields,
    }
    return Contract.model_validate(
        {**values, "output_format": output_format or {"type": "label", "labels": LABELS}}
    )


def test_system_prompt_has_the_four_contract_fields_in_order() -> None:
    prompt = system_prompt(
        contract(
            objective="  Summarise the ticket.\n",
            audience=" Tier-2 engineers ",
            source_material="The ticket text and nothing else.",
        )
    )
    lines = prompt.split("\n")
    assert lines[0] == "Summarise the ticket."  # stripped
    assert lines[1] == "Audience: Tier-2 engineers"
    assert lines[2] == "Source material: The ticket text and nothing else."
    assert lines[3].startswith("Answer with exactly one of these labels")
    assert len(lines) == 4


def test_label_instruction_lists_every_label_in_order() -> None:
    prompt = system_prompt(contract())
    assert "positive, negative, neutral" in prompt
    positions = [prompt.index(label) for label in LABELS]
    assert positions == sorted(positions)


def test_json_instruction_includes_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {"intent": {"type": "string"}, "urgent": {"type": "boolean"}},
        "required": ["intent"],
    }
    instruction = format_instruction(JsonFormat.model_validate({"type": "json", "schema": schema}))
    assert "JSON" in instruction
    embedded = instruction.split("JSON Schema: ", 1)[1]
    assert json.loads(embedded) == schema
    # And through the contract, the schema reaches the system prompt.
    prompt = system_prompt(contract({"type": "json", "schema": schema}))
    assert prompt.endswith(embedded)


def test_text_instruction_mentions_max_chars_only_when_set() -> None:
    bounded = format_instruction(TextFormat(type="text", max_chars=280))
    unbounded = format_instruction(TextFormat(type="text"))
    assert "280 characters" in bounded
    assert "characters" not in unbounded
    assert "280" in system_prompt(contract({"type": "text", "max_chars": 280}))


def test_demos_become_alternating_turns_before_the_input() -> None:
    demos = [
        Example("d1", "I love it", "positive", "train.jsonl:1"),
        Example("d2", "awful", "negative", "train.jsonl:2"),
        Example("d3", "a box", "neutral", "train.jsonl:3"),
    ]
    c = contract()
    messages = build_messages(c, "the lid cracked", demos)
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert messages[0]["content"] == system_prompt(c)
    pairs = [(messages[i]["content"], messages[i + 1]["content"]) for i in range(1, 7, 2)]
    assert pairs == [(d.input, d.output) for d in demos]
    assert messages[-1] == {"role": "user", "content": "the lid cracked"}


def test_no_demos_is_system_then_input() -> None:
    c = contract()
    assert build_messages(c, "hello") == [
        {"role": "system", "content": system_prompt(c)},
        {"role": "user", "content": "hello"},
    ]
