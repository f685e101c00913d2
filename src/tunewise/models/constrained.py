"""Constrained decoding for local models: the output format becomes a grammar (llguidance, the
engine behind guidance, vLLM's and llama.cpp's structured output), and at every step the tokens
that could not continue a valid answer are masked out of the logits.

It is the alternative to the repair loop: every answer parses, at the price of a mask per
generated token, where repair pays whole extra requests for the answers that break the format.
`ConstrainedModel` is a local model whose generations follow such a grammar.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tunewise.models.backend import Generation, LabelScores, Message, Sampling

if TYPE_CHECKING:
    from tunewise.models.local import LocalModel
    from tunewise.task.config import OutputFormat

# The separators json.dumps writes, and no free whitespace: a small model given room for
# whitespace may spend its whole budget on it.
_JSON_OPTIONS = {
    "item_separator": ", ",
    "key_separator": ": ",
    "whitespace_flexible": False,
    "lenient": True,  # keywords the grammar cannot express (e.g. format) are checked afterwards
}


def grammar_for(output_format: OutputFormat) -> str | None:
    """The llguidance grammar of what a valid answer looks like; None when the format has no
    shape a grammar can hold (free text, or labels, which are scored rather than generated)."""
    from llguidance import LLMatcher

    if output_format.type == "json":
        return str(
            LLMatcher.grammar_from_json_schema(
                output_format.json_schema,
                overrides=_JSON_OPTIONS,  # type: ignore[arg-type]
            )
        )
    if output_format.type == "text" and output_format.pattern:
        return str(LLMatcher.grammar_from_regex(output_format.pattern))
    return None


def grammar_tokenizer(hf_tokenizer: Any, vocab_size: int) -> Any:
    """llguidance's view of the model's tokenizer; about a second to build, so build it once."""
    import llguidance.hf

    return llguidance.hf.from_tokenizer(hf_tokenizer, n_vocab=vocab_size)


def check_grammar(grammar: str, tokenizer: Any) -> str | None:
    """None when llguidance accepts the grammar, else its error."""
    from llguidance import LLMatcher

    error = LLMatcher.validate_grammar(grammar, tokenizer)
    return error or None


class GrammarMask:
    """A transformers logits processor for one generate() call over a left-padded batch whose
    prompts end at column `prompt_width`. A sequence whose grammar is complete may only end."""

    def __init__(self, tokenizer: Any, grammar: str, batch_size: int, prompt_width: int) -> None:
        from llguidance import LLMatcher

        self.matchers = [LLMatcher(tokenizer, grammar) for _ in range(batch_size)]
        self.width = prompt_width
        self.eos = tokenizer.eos_token
        self.finished = [False] * batch_size

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        for row, matcher in enumerate(self.matchers):
            if input_ids.shape[1] > self.width and not self.finished[row]:
                token = int(input_ids[row, -1])
                if token == self.eos or not matcher.consume_token(token):
                    self.finished[row] = True
            if self.finished[row] or matcher.is_stopped() or matcher.is_error():
                allowed = np.zeros(scores.shape[1], dtype=bool)
                allowed[self.eos] = True
            else:
                bits = np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8)
                allowed = np.unpackbits(bits, bitorder="little")[: scores.shape[1]].astype(bool)
            blocked = torch.from_numpy(~allowed).to(scores.device)
            scores[row, blocked] = float("-inf")
        return scores


class SameWeights:
    """A local model's weights and tokenizer (shared with `base`) under other decoding rules:
    everything but generate() and the fingerprint is the base model's."""

    def __init__(self, base: LocalModel) -> None:
        self.base = base
        self.spec = base.spec
        self.batch_size = base.batch_size
        self.label_batch_size = base.label_batch_size
        self.dtype = base.dtype

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return self.base.count_tokens(messages)

    def score_labels(
        self, batch: Sequence[Sequence[Message]], labels: Sequence[str]
    ) -> list[LabelScores]:
        return self.base.score_labels(batch, labels)

    def __getattr__(self, name: str) -> Any:
        # Anything else a strategy reads (tokenizer, render, folder) is the base model's.
        return getattr(self.base, name)


class ConstrainedModel(SameWeights):
    """A local model whose generations follow a grammar: other answers, so its own
    fingerprint."""

    def __init__(self, base: LocalModel, grammar: str) -> None:
        super().__init__(base)
        self.grammar = grammar

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.grammar.encode()).hexdigest()
        return hashlib.sha256(f"{self.base.fingerprint()}+grammar-{digest}".encode()).hexdigest()

    def generate(
        self,
        batch: Sequence[Sequence[Message]],
        max_new_tokens: int,
        sampling: Sampling | None = None,
    ) -> list[Generation]:
        return self.base.generate(batch, max_new_tokens, sampling, grammar=self.grammar)
