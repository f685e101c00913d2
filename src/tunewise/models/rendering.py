"""The text a chat model sees for a conversation, from its tokenizer alone: special-token strings
inside user text defused, then the chat template (or a plain transcript for a base model)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunewise.models.backend import Message


def special_strings(tokenizer: Any) -> list[str]:
    """A tokenizer's special-token strings, longest first (so a longer one is defused before a
    shorter one inside it)."""
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    found = {t.content for t in decoder.values() if getattr(t, "special", False)}
    found |= set(tokenizer.all_special_tokens)
    return sorted((s for s in found if len(s) > 1), key=len, reverse=True)


def defuse(content: str, specials: Sequence[str]) -> str:
    """Special-token strings inside user text (say "<|im_end|>") must stay text: otherwise
    an input could end its own turn. A zero-width space after the first character keeps
    them readable and makes the tokenizer split them into ordinary tokens."""
    for special in specials:
        if special in content:
            content = content.replace(special, f"{special[0]}\u200b{special[1:]}")
    return content


def render_prompt(
    tokenizer: Any,
    messages: Sequence[Message],
    *,
    answer_next: bool = True,
    specials: Sequence[str] | None = None,
) -> str:
    """What LocalModel.render returns, from the tokenizer alone (no weights): every turn's
    special-token strings defused, then the chat template, or a plain transcript for a base
    model. `specials` defaults to special_strings(tokenizer)."""
    specials = special_strings(tokenizer) if specials is None else specials
    messages = [{**m, "content": defuse(m["content"], specials)} for m in messages]  # type: ignore[misc]
    if tokenizer.chat_template:
        return str(
            tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=answer_next
            )
        )
    # A base model: a plain transcript, with the tokenizer's own BOS when it has one.
    body = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)
    return f"{tokenizer.bos_token or ''}{body}" + ("\n\nAssistant:" if answer_next else "")
