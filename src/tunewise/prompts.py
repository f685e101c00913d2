"""Context assembly: the contract becomes a system prompt; demos and the input follow as turns."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tunewise.data import Example
from tunewise.models.backend import Message
from tunewise.task import Contract, OutputFormat


def format_instruction(output_format: OutputFormat) -> str:
    """How the answer must look, in words the model can follow."""
    if output_format.type == "label":
        labels = ", ".join(output_format.labels)
        return f"Answer with exactly one of these labels: {labels}. Reply with the label only."
    if output_format.type == "json":
        schema = json.dumps(output_format.json_schema, ensure_ascii=False, sort_keys=True)
        return f"Reply with one JSON value only, no other text, matching this JSON Schema: {schema}"
    limit = (
        f" Keep it under {output_format.max_chars} characters." if output_format.max_chars else ""
    )
    return f"Reply with the answer only.{limit}"


def system_prompt(contract: Contract) -> str:
    """The four fields of the input contract, in a fixed order."""
    return "\n".join(
        [
            contract.objective.strip(),
            f"Audience: {contract.audience.strip()}",
            f"Source material: {contract.source_material.strip()}",
            format_instruction(contract.output_format),
        ]
    )


def build_messages(contract: Contract, text: str, demos: Sequence[Example] = ()) -> list[Message]:
    """System prompt, then each demo as a user/assistant exchange, then the input."""
    messages: list[Message] = [{"role": "system", "content": system_prompt(contract)}]
    for demo in demos:
        messages.append({"role": "user", "content": demo.input})
        messages.append({"role": "assistant", "content": demo.output})
    messages.append({"role": "user", "content": text})
    return messages
