"""Extractive answering: generation constrained to copy a span of the retrieved passages.

A small model given passages often paraphrases, drifts or answers from memory; asked to copy,
it only has to pick where the answer starts and where it ends, which it does far better. At
each step only the tokens that continue some occurrence of the answer so far inside a passage
are allowed, so every answer is a verbatim substring of the context. A span starts at a word
and ends before the next word (or punctuation), never inside one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tunewise.models.backend import Generation, Message, Sampling
from tunewise.models.constrained import SameWeights

if TYPE_CHECKING:
    from tunewise.models.local import LocalModel

MAX_SPAN_TOKENS = 24  # a short answer; the mask forces the end after this many tokens
_OPENERS = ("(", "[", "{", '"', "'", "`", "\u201c", "\u2018")


@dataclass(frozen=True)
class Passages:
    """The passages of one request as token ids, with where a span may start and end."""

    tokens: tuple[tuple[int, ...], ...]
    starts: tuple[tuple[bool, ...], ...]  # a word begins at this position
    ends: tuple[tuple[bool, ...], ...]  # a span may end before this position (len: n + 1)


def tokenize_passages(tokenizer: Any, passages: Sequence[str]) -> Passages:
    """Token ids of each passage (with a leading space, so its first word is tokenized as a
    word inside running text is), and the word boundaries."""
    tokens, starts, ends = [], [], []
    for passage in passages:
        ids = tokenizer.encode(" " + passage.strip(), add_special_tokens=False)
        pieces = [tokenizer.decode([i]) for i in ids]
        start = [
            bool(piece.strip())
            and (
                piece[:1].isspace()
                or j == 0
                or pieces[j - 1][-1:].isspace()
                or pieces[j - 1].strip() in _OPENERS
            )
            for j, piece in enumerate(pieces)
        ]
        # A span may stop before a word, before punctuation or whitespace, or at the end.
        end = [
            j > 0 and (start[j] or not piece[:1].isalnum()) for j, piece in enumerate(pieces)
        ] + [True]
        tokens.append(tuple(ids))
        starts.append(tuple(start))
        ends.append(tuple(end))
    return Passages(tuple(tokens), tuple(starts), tuple(ends))


class SpanState:
    """Where the answer generated so far occurs in the passages, and what may come next."""

    def __init__(self, passages: Passages, eos: int, max_tokens: int = MAX_SPAN_TOKENS) -> None:
        self.passages = passages
        self.eos = eos
        self.max_tokens = max_tokens
        self.length = 0
        # (passage, position of the next token) for every occurrence of the answer so far.
        self.at = [
            (k, j)
            for k, starts in enumerate(passages.starts)
            for j, starts_word in enumerate(starts)
            if starts_word
        ]
        self.done = not self.at

    def allowed(self) -> set[int]:
        """The token ids that keep the answer a span (the end-of-turn token where it may end)."""
        if self.done:
            return {self.eos}
        tokens = self.passages.tokens
        nexts = {tokens[k][j] for k, j in self.at if j < len(tokens[k])}
        if self.length > 0 and any(self.passages.ends[k][j] for k, j in self.at):
            nexts.add(self.eos)
        if self.length >= self.max_tokens:
            return {self.eos}
        return nexts or {self.eos}

    def consume(self, token: int) -> None:
        if self.done or token == self.eos:
            self.done = True
            return
        tokens = self.passages.tokens
        self.at = [(k, j + 1) for k, j in self.at if j < len(tokens[k]) and tokens[k][j] == token]
        self.length += 1
        self.done = not self.at


class SpanMask:
    """A transformers logits processor for one generate() call over a batch whose prompts end
    at column `prompt_width`: row i may only copy a span of its passages."""

    def __init__(
        self, tokenizer: Any, passages: Sequence[Sequence[str]], prompt_width: int
    ) -> None:
        eos = int(tokenizer.eos_token_id)
        self.states = [SpanState(tokenize_passages(tokenizer, p), eos) for p in passages]
        self.width = prompt_width

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        for row, state in enumerate(self.states):
            if input_ids.shape[1] > self.width:
                state.consume(int(input_ids[row, -1]))
            allowed = np.zeros(scores.shape[1], dtype=bool)
            allowed[list(state.allowed())] = True
            scores[row, torch.from_numpy(~allowed).to(scores.device)] = float("-inf")
        return scores


def mean_logprob(logits: Sequence[Any], tokens: Sequence[int]) -> float:
    """The mean log-probability the model gave the chosen tokens before any mask: how sure it
    is of the span (the end-of-turn token included: that it ends there)."""
    import torch

    if not tokens:
        return float("-inf")
    values = [
        float(torch.log_softmax(step.float(), dim=-1)[token])
        for step, token in zip(logits, tokens, strict=False)
    ]
    return sum(values) / len(values)


class ExtractiveModel(SameWeights):
    """A local model that answers by copying a span of each request's passages, or with the
    task's abstention phrase when it is less sure of its best span than `abstain_below` (a mean
    token log-probability, calibrated on training questions)."""

    def __init__(
        self,
        base: LocalModel,
        abstention: str | None,
        abstain_below: float = -math.inf,
        *,
        max_chars: int | None = None,
    ) -> None:
        super().__init__(base)
        self.abstention = abstention
        self.abstain_below = abstain_below
        self.max_chars = max_chars  # the format's limit: a longer span keeps its first words

    def fingerprint(self) -> str:
        rule = f"extractive-v2:{self.abstention}:{self.abstain_below:.6g}:{self.max_chars}"
        return hashlib.sha256(f"{self.base.fingerprint()}+{rule}".encode()).hexdigest()

    def generate(
        self,
        batch: Sequence[Sequence[Message]],
        max_new_tokens: int,
        sampling: Sampling | None = None,
        *,
        spans: Sequence[Sequence[str]] | None = None,
    ) -> list[Generation]:
        """Each row's answer, a span of its passages (none given: no span, so the abstention)."""
        passages = spans if spans is not None else [()] * len(batch)
        budget = min(max_new_tokens, MAX_SPAN_TOKENS + 1)
        answers = self.base.generate(batch, budget, sampling, spans=passages)
        return [self._decided(answer) for answer in answers]

    def _decided(self, answer: Generation) -> Generation:
        unsure = answer.confidence is None or answer.confidence < self.abstain_below
        if self.abstention and (unsure or not answer.text):
            return dataclasses.replace(answer, text=self.abstention)
        return dataclasses.replace(answer, text=within(answer.text, self.max_chars))


def within(span: str, max_chars: int | None) -> str:
    """The span's longest run of whole words that fits `max_chars` (a prefix of a span is still
    a span of the passage); the span itself when it fits or there is no limit."""
    if max_chars is None or len(span) <= max_chars:
        return span
    cut = span[: max_chars + 1].rstrip()
    if len(cut) > max_chars:
        cut = cut[: cut.rfind(" ")] if " " in cut else cut[:max_chars]
    return cut.rstrip(" ,;:-([{") or span[:max_chars]
