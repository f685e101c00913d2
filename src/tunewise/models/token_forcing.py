"""Full-label likelihood where echoing the prompt costs too much: each label's tokens are asked
for one at a time, forced with `logit_bias`, and the server reports each forced token's own
log-probability (raw, before the bias). The labels' tokens come from the server's tokenize
endpoint, as they follow the prompt's last characters; labels that share a prefix share its
requests. The end-of-turn's log-probability is read from the distribution after the label's
last token, which the same request (two tokens long, the second forced too) reports when the
end-of-turn is the most likely token there, and further requests otherwise.

llama-cpp-python's server, whose echo ranks the whole vocabulary in Python for every echoed
token (about 0.1 s a token), answers these requests in a fraction of a second each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

FORCE = 100.0  # logit_bias: the forced token wins whatever its probability
TOP = 20  # the most alternatives asked for to find the end-of-turn after a label
TAIL = 16  # characters of the prompt's end tokenized with each label, for its tokens in context
# Tokenize endpoints, at the server's root: llama-cpp-python's, vLLM's, llama.cpp's llama-server.
TOKENIZERS = (
    ("/extras/tokenize", "input"),
    ("/tokenize", "prompt"),
    ("/tokenize", "content"),
)

Post = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any] | None]]  # None: unsupported


@dataclass
class Tokenizer:
    """The server's tokenizer, through whichever tokenize endpoint it has (`form`)."""

    model: str
    form: tuple[str, str] | None = None
    known: dict[str, list[int]] = field(default_factory=dict)

    async def find(self, post: Post) -> bool:
        for form in TOKENIZERS:
            self.form = form
            if await self.ids(post, "\n") is not None:
                return True
        self.form = None
        return False

    async def ids(self, post: Post, text: str) -> list[int] | None:
        if text in self.known:
            return self.known[text]
        if self.form is None:
            return None
        path, key = self.form
        body = {"model": self.model, key: text, "add_special_tokens": False, "add_special": False}
        data = await post(path, body)
        try:
            found = [int(t) for t in data["tokens"]] if data is not None else None
        except (LookupError, TypeError, ValueError):
            found = None
        if found is not None:
            self.known[text] = found
        return found


async def label_ids(
    tokenizer: Tokenizer, post: Post, prompt: str, label: str, end: str
) -> list[int] | None:
    """Token ids of `label` as the answer after `prompt`, as local models tokenize an answer in
    context (the prompt's last characters tokenized with and without it), when the end-of-turn
    after it is one token of its own."""
    tail = prompt[-TAIL:]
    before = await tokenizer.ids(post, tail)
    alone = await tokenizer.ids(post, tail + label)
    ended = await tokenizer.ids(post, tail + label + end)
    if before is None or alone is None or ended is None:
        return None
    n = len(before)
    if alone[:n] != before or ended[: len(alone)] != alone or len(ended) != len(alone) + 1:
        return None
    return alone[n:] or None


def completion(
    model: str, prompt: str, bias: dict[int, float], tokens: int, alternatives: int
) -> dict[str, Any]:
    return {
        "model": model,
        "prompt": prompt,
        "max_tokens": tokens,
        "temperature": 0,
        "logprobs": alternatives,
        "logit_bias": {str(token): value for token, value in bias.items()},
    }


@dataclass(frozen=True)
class Forced:
    """What a forced request says: the token's text and log-probability, and the alternatives
    after it (where a second token was asked for)."""

    text: str
    logprob: float
    after: dict[str, float] | None


def read_forced(data: dict[str, Any], position: int = 0) -> Forced | None:
    """The generated token at `position`, and the alternatives at the next one."""
    try:
        logprobs = data["choices"][0]["logprobs"]
        text = str(logprobs["tokens"][position])
        logprob = float(logprobs["token_logprobs"][position])
        tops = logprobs.get("top_logprobs") or []
        after = tops[position + 1] if len(tops) > position + 1 else None
        after = {str(k): float(v) for k, v in after.items()} if isinstance(after, dict) else None
    except (LookupError, TypeError, ValueError, AttributeError):
        return None
    return Forced(text, logprob, after)


def end_logprob(after: dict[str, float] | None, end: str) -> float | None:
    """The end-of-turn's log-probability among alternatives: written as the template's end
    string, or as "" by servers that print no special tokens (llama-cpp-python; with few
    alternatives asked for, the "" is the end-of-turn's rather than a rarer special token's)."""
    for spelled in (end, ""):
        if after and spelled in after:
            return after[spelled]
    return None


async def label_logprobs(
    ask: Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]],
    model: str,
    prompt: str,
    labels: Sequence[str],
    ids: dict[str, list[int]],
    ending: tuple[str, int],
) -> list[tuple[float, int]] | None:
    """Each label's summed log-probability (its tokens and the end-of-turn) and token count;
    None where a forced request cannot be read. `ids[label]` are the label's tokens, `ending`
    the end-of-turn's text and token."""
    known: dict[tuple[int, ...], Forced] = {}  # forced paths, shared between labels
    scored = []
    for label in labels:
        tokens, text, total = ids[label], prompt, 0.0
        for j, token in enumerate(tokens):
            path, last = tuple(tokens[: j + 1]), j == len(tokens) - 1
            forced = known.get(path)
            if forced is None or (last and forced.after is None):
                # The last token is asked for twice, so an end-of-turn cannot stop the answer
                # before the alternatives after the label are seen.
                body = completion(model, text, {token: FORCE}, 2 if last else 1, 1)
                data = await ask(body)
                forced = None if data is None else read_forced(data)
                if forced is None:
                    return None
                known[path] = forced
            total += forced.logprob
            text += forced.text
        closing = end_logprob(known[tuple(tokens)].after, ending[0])
        if closing is None:
            closing = await _end_among_more(ask, model, text, ending)
        if closing is None:
            return None
        scored.append((total + closing, len(tokens) + 1))
    return scored


async def _end_among_more(
    ask: Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]],
    model: str,
    text: str,
    ending: tuple[str, int],
) -> float | None:
    """The end-of-turn's log-probability after a label where it was not the most likely token:
    among 5, then 20 alternatives (the end-of-turn barred, so that it cannot stop the answer);
    absent from 20, at most the least of them."""
    after: dict[str, float] | None = None
    for alternatives in (5, TOP):
        body = completion(model, text, {ending[1]: -FORCE}, 1, alternatives)
        data = await ask(body)
        try:
            tops = data["choices"][0]["logprobs"]["top_logprobs"] if data else None
            after = {str(k): float(v) for k, v in tops[0].items()} if tops else None
        except (LookupError, TypeError, ValueError, AttributeError):
            return None
        found = end_logprob(after, ending[0])
        if found is not None:
            return found
    return min(after.values()) if after else None
