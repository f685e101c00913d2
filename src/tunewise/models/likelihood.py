"""Full-label likelihood through `/v1/completions`, as lm-evaluation-harness scores multiple
choice: the conversation rendered with the chat template the server applies, then each label
and the template's end-of-turn as the rest of the prompt, echoed with log-probabilities
(`echo`, `logprobs`, `max_tokens: 1`). A label's score is the sum of its tokens' and the
end-of-turn's log-probabilities, as the local backend sums them (models/local.py), and the
probabilities are the softmax of those sums over the labels.

The server does not say which template it applies to chat requests, so each template known
here is tried once per endpoint: it is the server's when the completion of the rendered prompt
reads the same number of prompt tokens as the chat request and starts with the same token at
the same log-probability.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tunewise.models.backend import Message

SAME_LOGPROB = 0.05  # nats: the chat and completion first tokens agree within this


@dataclass(frozen=True)
class ServedTemplate:
    """A chat template as servers apply it: the prompt before the answer, and what ends it."""

    name: str
    render: Callable[[Sequence[Message]], str]
    end: str  # the end-of-turn string after an answer


def _chatml(messages: Sequence[Message]) -> str:
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


def _llama3(messages: Sequence[Message]) -> str:
    turns = "".join(
        f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content'].strip()}<|eot_id|>"
        for m in messages
    )
    return f"<|begin_of_text|>{turns}<|start_header_id|>assistant<|end_header_id|>\n\n"


def _gemma(messages: Sequence[Message]) -> str:
    # Gemma has no system role: the system prompt opens the first user turn.
    system = "".join(f"{m['content']}\n\n" for m in messages if m["role"] == "system")
    turns = []
    for m in (m for m in messages if m["role"] != "system"):
        role = "model" if m["role"] == "assistant" else "user"
        content = m["content"].strip()
        if role == "user" and system:
            content, system = system + content, ""
        turns.append(f"<start_of_turn>{role}\n{content}<end_of_turn>\n")
    return "<bos>" + "".join(turns) + "<start_of_turn>model\n"


def _phi3(messages: Sequence[Message]) -> str:
    turns = "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in messages)
    return turns + "<|assistant|>\n"


TEMPLATES = (
    ServedTemplate("chatml", _chatml, "<|im_end|>"),
    ServedTemplate("llama-3", _llama3, "<|eot_id|>"),
    ServedTemplate("gemma", _gemma, "<end_of_turn>"),
    ServedTemplate("phi-3", _phi3, "<|end|>"),
)
BOS_STRINGS = ("<|begin_of_text|>", "<bos>")  # servers that add BOS themselves want them off


def candidates() -> list[tuple[str, ServedTemplate, bool]]:
    """(name, template, keep BOS text) in the order the probe tries them."""
    found = []
    for template in TEMPLATES:
        found.append((template.name, template, True))
        if any(template.render([]).startswith(b) for b in BOS_STRINGS):
            found.append((f"{template.name}-no-bos", template, False))
    return found


def template_named(name: str) -> tuple[ServedTemplate, bool] | None:
    for known, template, keep_bos in candidates():
        if known == name:
            return template, keep_bos
    return None


def render(template: ServedTemplate, keep_bos: bool, messages: Sequence[Message]) -> str:
    text = template.render(messages)
    if not keep_bos:
        for bos in BOS_STRINGS:
            text = text.removeprefix(bos)
    return text


def completion_body(model: str, prompt: str) -> dict[str, Any]:
    """A completion that echoes `prompt` with its tokens' log-probabilities and generates one
    token (0 would mean "no limit" to some servers)."""
    return {
        "model": model,
        "prompt": prompt,
        "max_tokens": 1,
        "temperature": 0,
        "echo": True,
        "logprobs": 1,
    }


@dataclass(frozen=True)
class Echo:
    """What an echoed completion says: its prompt's token count, the echoed prompt tokens'
    log-probabilities (None for the first), and the generated token, if any, with its own."""

    prompt_tokens: int | None
    prompt_logprobs: list[float | None]
    generated: tuple[str, float] | None


def read_echo(data: dict[str, Any]) -> Echo | None:
    """The echo of a completion response; None when the server did not echo log-probabilities."""
    try:
        logprobs = data["choices"][0]["logprobs"]
        values = [None if v is None else float(v) for v in logprobs["token_logprobs"]]
        tokens = [str(t) for t in logprobs["tokens"]]
        usage = data.get("usage") or {}
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens", 1)
    except (LookupError, TypeError, ValueError, AttributeError):
        return None
    # A generation that stopped at once (end of text) adds no token to the list.
    generated = 1 if completion != 0 else 0
    if len(values) <= generated or len(tokens) != len(values):
        return None
    last = values[-1]
    token = (tokens[-1], last) if generated and last is not None else None
    cut = len(values) - generated
    return Echo(prompt if isinstance(prompt, int) else None, values[:cut], token)


def matches_chat(echo: Echo, chat: dict[str, Any]) -> bool:
    """Whether a completion of the rendered prompt saw what the chat request saw: as many prompt
    tokens (where both report them), the same first answer token at the same log-probability."""
    try:
        first = chat["choices"][0]["logprobs"]["content"][0]
        token, logprob = str(first["token"]), float(first["logprob"])
    except (LookupError, TypeError, ValueError):
        return False
    usage = chat.get("usage") or {}
    chat_tokens = usage.get("prompt_tokens")
    known = isinstance(chat_tokens, int) and echo.prompt_tokens is not None
    if known and chat_tokens != echo.prompt_tokens:
        return False
    if echo.generated is None:
        return False
    return echo.generated[0] == token and abs(echo.generated[1] - logprob) <= SAME_LOGPROB


def continuation_logprob(prompt: Echo, full: Echo) -> tuple[float, int] | None:
    """Summed log-probability of what `full` adds to `prompt` (both echoes of the same
    endpoint), and its token count: the last echoed prompt tokens of `full`, as many as it has
    more than `prompt`. None where the counts do not line up."""
    if prompt.prompt_tokens is None or full.prompt_tokens is None:
        return None
    added = full.prompt_tokens - prompt.prompt_tokens
    if added < 1 or added >= len(full.prompt_logprobs):
        return None
    values = full.prompt_logprobs[-added:]
    if any(v is None or math.isnan(v) for v in values):
        return None
    return sum(v for v in values if v is not None), added


def softmax(logprobs: Sequence[float]) -> list[float]:
    peak = max(logprobs)
    weights = [math.exp(lp - peak) for lp in logprobs]
    total = sum(weights)
    return [w / total for w in weights]
