"""Context assembly: the contract becomes a system prompt; demos and the input follow as turns.

With retrieval, the layers are assembled under a token budget in priority order: the contract's
system prompt and the input always; then retrieved passages, best first, while they fit; then
demos while they fit. Passages sit in the last user turn, right above the input they serve.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tunewise.models.backend import Message
from tunewise.task.config import Contract, OutputFormat
from tunewise.task.data import Example


def format_instruction(output_format: OutputFormat, *, schema_above: bool = False) -> str:
    """How the answer must look, in words the model can follow. With `schema_above` (a later
    turn of a conversation whose system prompt gave the instruction), a JSON Schema is referred
    to rather than repeated: it can be most of a request's tokens."""
    if output_format.type == "label":
        labels = ", ".join(output_format.labels)
        return f"Answer with exactly one of these labels: {labels}. Reply with the label only."
    if output_format.type == "json":
        reply = "Reply with one JSON value only, no other text, matching"
        if schema_above:
            return f"{reply} the JSON Schema given above."
        schema = json.dumps(output_format.json_schema, ensure_ascii=False, sort_keys=True)
        return f"{reply} this JSON Schema: {schema}"
    limit = (
        f" Keep it under {output_format.max_chars} characters." if output_format.max_chars else ""
    )
    pattern = (
        f" The answer must match this regular expression: {output_format.pattern}"
        if output_format.pattern
        else ""
    )
    abstain = (
        f" If the source material does not give the answer, reply exactly: "
        f"{output_format.abstention}"
        if output_format.abstention
        else ""
    )
    return f"Reply with the answer only.{limit}{pattern}{abstain}"


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


@dataclass(frozen=True)
class Passage:
    """A retrieved passage as the prompt cites it."""

    id: str
    title: str
    text: str


def with_passages(text: str, passages: Sequence[Passage]) -> str:
    """The last user turn: numbered sources with their ids, then the input."""
    if not passages:
        return text
    blocks = [f"[{p.id}] {p.title}\n{p.text}" for p in passages]
    return "Sources:\n\n" + "\n\n".join(blocks) + f"\n\n{text}"


@dataclass(frozen=True)
class Assembled:
    messages: list[Message]
    passages: tuple[Passage, ...]
    demos: tuple[Example, ...]
    tokens: int


def assemble(
    contract: Contract,
    text: str,
    passages: Sequence[Passage],
    demos: Sequence[Example],
    count_tokens: Callable[[list[Message]], int],
    budget: int,
) -> Assembled:
    """The largest prompt under `budget` tokens: passages first (best first), then demos. The
    system prompt and the input are never cut; if they alone exceed the budget, they go as is."""

    def build(kept: Sequence[Passage], shown: Sequence[Example]) -> list[Message]:
        messages = build_messages(contract, text, shown)
        messages[-1] = {"role": "user", "content": with_passages(text, kept)}
        return messages

    # Each layer keeps a prefix of its ranking: a passage is never kept when a better one is not.
    kept: list[Passage] = []
    for passage in passages:
        if count_tokens(build([*kept, passage], ())) > budget:
            break
        kept.append(passage)
    shown: list[Example] = []
    for demo in demos:
        if count_tokens(build(kept, [*shown, demo])) > budget:
            break
        shown.append(demo)
    messages = build(kept, shown)
    return Assembled(messages, tuple(kept), tuple(shown), count_tokens(messages))
