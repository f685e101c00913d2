"""Hugging Face transformers models on CPU or GPU, including the embedded default model.

torch and transformers are imported only when a model is really needed, so a run served from the
response cache starts in a fraction of a second.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunewise.models.backend import Generation, LabelScores, Message, Sampling, one_by_one
from tunewise.models.constrained import GrammarMask, grammar_tokenizer
from tunewise.models.dtype import NEAR_TIE_NATS, near_tie, referee_fits
from tunewise.models.rendering import render_prompt, special_strings
from tunewise.models.spans import SpanMask, mean_logprob
from tunewise.models.weights import weights_fingerprint

# Bump when render() or encode() change what a model sees for the same messages: it is part of
# the fingerprint, so cached answers of the old prompts are not served for the new ones.
PROMPT_FORMAT = 2


def contiguous_head_input(model: Any) -> None:
    """Hand the output projection a contiguous input. Models project only the last positions
    (`logits_to_keep`), a strided slice of the hidden states; torch then multiplies it as a
    batched matmul with the whole vocabulary matrix once per sequence: 2-4x slower on CPU at
    batch 8 than one plain matmul of the same numbers."""
    model.get_output_embeddings().register_forward_pre_hook(
        lambda _module, args: (args[0].contiguous(), *args[1:])
    )


def shared_turns(batch: Sequence[Sequence[Message]]) -> int:
    """How many leading turns every conversation of the batch has alike, short of each one's
    last turn: the system prompt and demos of a k-shot batch, the system prompt of a batch of
    repair conversations (each carries its own question and answer)."""
    limit = min(len(messages) for messages in batch) - 1
    n = 0
    while n < limit and all(messages[n] == batch[0][n] for messages in batch):
        n += 1
    return n


@dataclasses.dataclass(frozen=True)
class Constraint:
    """What a generation must follow: a grammar, or each row's passages to copy a span of."""

    grammar: str | None = None
    spans: Sequence[Sequence[str]] | None = None

    def mask(self, model: LocalModel, rows: int, prompt_width: int) -> GrammarMask | SpanMask:
        if self.spans is not None:
            return SpanMask(model.tokenizer, self.spans, prompt_width)
        assert self.grammar is not None
        return GrammarMask(model.grammar_tokenizer(), self.grammar, rows, prompt_width)


class LocalModel:
    """A causal LM from a local folder (safetensors + tokenizer), loaded on first use."""

    # Generations padded together. Decoding a step costs about the same for 8 rows as for 32
    # on CPU (per-step overhead dominates a small model), so wide batches pay: 64 zero-shot
    # country-facts answers took 16.5 s at 8 rows and 10.8 s at 32, the same answers. Rows
    # are sorted by length first (predict), and generate() splits a batch whose KV cache
    # would exceed KV_CACHE_BYTES.
    batch_size = 32
    KV_CACHE_BYTES = 2 * 2**30
    # Labels are scored one input at a time; answers are cached per chunk, so small chunks
    # lose little to a kill.
    label_batch_size = 8

    def __init__(
        self,
        spec: str,
        folder: Path,
        home: Path,
        *,
        adapter: Path | None = None,
        dtype: str = "float32",
    ) -> None:
        self.spec = spec
        self.folder = folder
        self.home = home
        self.adapter = adapter
        self.dtype = dtype  # "float32" or "bfloat16" (resolve "auto" with resolve_dtype first)
        self._fingerprint: str | None = None
        self._tokenizer: Any = None
        self._model: Any = None
        self._specials: list[str] | None = None
        self._grammar_tokenizer: Any = None  # llguidance's view, built on first constrained use
        # bf16 near ties are settled in float32 (0: never, as for models too big to copy).
        self.near_tie_nats = NEAR_TIE_NATS if dtype != "float32" and referee_fits(folder) else 0.0
        self._float32: LocalModel | None = None  # the referee of those near ties, loaded on need
        # KV state of the last shared prefix (system prompt + demos), reused while it repeats.
        self._prefix: tuple[tuple[int, ...], Any] | None = None

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            parts = [weights_fingerprint(self.folder, self.home), f"prompt-format-{PROMPT_FORMAT}"]
            if self.adapter is not None:
                parts.append(weights_fingerprint(self.adapter, self.home))
            if self.dtype != "float32":  # other answers; float32 keys stay as they were
                parts.append(f"{self.dtype}-near-ties-{self.near_tie_nats}-in-float32")
            self._fingerprint = hashlib.sha256("+".join(parts).encode()).hexdigest()
        return self._fingerprint

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.folder)
            if self._tokenizer.pad_token is None:
                self._tokenizer.pad_token = self._tokenizer.eos_token
        return self._tokenizer

    @property
    def model(self) -> Any:
        if self._model is None:
            import torch
            from transformers import AutoModelForCausalLM

            device = "cuda" if torch.cuda.is_available() else "cpu"
            model = AutoModelForCausalLM.from_pretrained(self.folder, dtype=torch.float32)
            if self.adapter is not None:
                from peft import PeftModel

                # Merged for inference: the same function, without the adapter's extra matmuls.
                model = PeftModel.from_pretrained(model, self.adapter).merge_and_unload()
            # Merged in float32 first, so a bf16 model rounds the merged weights only once.
            self._model = model.to(device=device, dtype=getattr(torch, self.dtype)).eval()
            contiguous_head_input(self._model)
        return self._model

    def render(self, messages: Sequence[Message], *, answer_next: bool = True) -> str:
        """The exact text the model sees; with answer_next, it ends where the answer starts."""
        return render_prompt(
            self.tokenizer, messages, answer_next=answer_next, specials=self._special_strings()
        )

    def _special_strings(self) -> list[str]:
        if self._specials is None:
            self._specials = special_strings(self.tokenizer)
        return self._specials

    def grammar_tokenizer(self) -> Any:
        if self._grammar_tokenizer is None:
            self._grammar_tokenizer = grammar_tokenizer(
                self.tokenizer, self.model.config.vocab_size
            )
        return self._grammar_tokenizer

    def encode(self, text: str) -> list[int]:
        """Token ids of already rendered text (its special tokens included)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.encode(self.render(messages)))

    def answer_ids(self, prompt: str, prompt_ids: list[int], answer: str) -> list[int]:
        """Token ids of `answer` as the complete assistant turn (answer, then end-of-turn),
        tokenized in context. Label scoring and fine-tuning targets both use this, so what is
        trained is exactly what is scored."""
        eos = self.tokenizer.eos_token or ""
        full = self.encode(prompt + answer + eos)
        if full[: len(prompt_ids)] == prompt_ids and len(full) > len(prompt_ids):
            return full[len(prompt_ids) :]
        return self.encode(answer + eos)  # the answer merged with the prompt's last token

    def score_labels(
        self, batch: Sequence[Sequence[Message]], labels: Sequence[str]
    ) -> list[LabelScores]:
        return one_by_one(batch, lambda messages: self._score(messages, labels))

    def _score(self, messages: Sequence[Message], labels: Sequence[str]) -> LabelScores:
        import torch

        start = time.perf_counter()
        prompt = self.render(messages)
        prompt_ids = self.encode(prompt)
        continuations = [self.answer_ids(prompt, prompt_ids, label) for label in labels]
        model = self.model
        with torch.inference_mode():
            # The shared prefix comes from its cache; one pass over the rest of the prompt, whose
            # cache every label's continuation then shares.
            cache, done = self._prefix_cache(messages[:-1], prompt_ids)
            ids = torch.tensor([prompt_ids[done:]], device=model.device)
            out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
            first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
            cache = out.cache
            cache.batch_repeat_interleave(len(labels))
            width = max(len(c) for c in continuations)
            pad = self.tokenizer.pad_token_id
            batch = torch.tensor(
                [c + [pad] * (width - len(c)) for c in continuations], device=model.device
            )
            rest = torch.log_softmax(model(input_ids=batch, cache=cache).logits.float(), dim=-1)
        logprobs = []
        for row, tokens in enumerate(continuations):
            total = float(first[tokens[0]])
            total += sum(float(rest[row, j - 1, tokens[j]]) for j in range(1, len(tokens)))
            logprobs.append(total)
        if near_tie(logprobs, self.near_tie_nats):  # never in float32: its margin is 0
            settled = self._float32_twin()._score(messages, labels)
            return dataclasses.replace(settled, seconds=time.perf_counter() - start)
        peak = max(logprobs)
        weights = [math.exp(lp - peak) for lp in logprobs]
        norm = sum(weights)
        probabilities = {label: w / norm for label, w in zip(labels, weights, strict=True)}
        best = max(range(len(labels)), key=lambda i: logprobs[i])
        return LabelScores(
            label=labels[best],
            probabilities=probabilities,
            input_tokens=len(prompt_ids),
            output_tokens=len(continuations[best]),
            seconds=time.perf_counter() - start,
            logprobs=dict(zip(labels, logprobs, strict=True)),
        )

    def _float32_twin(self) -> LocalModel:
        """The same weights (and adapter) in float32, sharing this model's tokenizer."""
        if self._float32 is None:
            self._float32 = LocalModel(self.spec, self.folder, self.home, adapter=self.adapter)
            self._float32._tokenizer = self.tokenizer
        return self._float32

    def _prefix_cache(self, prefix: Sequence[Message], prompt_ids: list[int]) -> tuple[Any, int]:
        """A private copy of the KV cache of the leading turns `prefix`, and its length in
        tokens; (None, 0) when they do not open the prompt `prompt_ids`."""
        if not prefix:
            return None, 0
        ids = tuple(self.encode(self.render(prefix, answer_next=False)))
        usable = 0 < len(ids) < len(prompt_ids) and tuple(prompt_ids[: len(ids)]) == ids
        if not usable:
            return None, 0
        if self._prefix is None or self._prefix[0] != ids:
            import torch

            tensor = torch.tensor([list(ids)], device=self.model.device)
            out = self.model(input_ids=tensor, use_cache=True, logits_to_keep=1)
            self._prefix = (ids, out.cache)
        return copy.deepcopy(self._prefix[1]), len(ids)

    def _generation_inputs(
        self, batch: Sequence[Sequence[Message]], rows: list[list[int]]
    ) -> tuple[Any, Any, Any]:
        """Token ids and attention mask of a batch, and a copy of the KV cache of the turns its
        conversations open with alike (None without any). Each row is the shared prefix, then
        padding, then its own tokens: the prefix is computed once for all batches, as in label
        scoring, and the positions (counted from the mask) skip the padding. Without a shared
        prefix the rows are simply left-padded. `rows` are the batch's prompts, tokenized."""
        import torch

        cache, done = self._prefix_cache(batch[0][: shared_turns(batch)], rows[0])
        if any(len(row) <= done or row[:done] != rows[0][:done] for row in rows):
            cache, done = None, 0
        width = max(len(row) for row in rows) - done
        pad = self.tokenizer.pad_token_id
        ids = [row[:done] + [pad] * (width - len(row) + done) + row[done:] for row in rows]
        mask = [
            [1] * done + [0] * (width - len(row) + done) + [1] * (len(row) - done) for row in rows
        ]
        if cache is not None:
            cache.batch_repeat_interleave(len(rows))
        device = self.model.device
        return torch.tensor(ids, device=device), torch.tensor(mask, device=device), cache

    def _rows_within_kv_budget(self, longest: int, max_new_tokens: int) -> int:
        """How many rows fit KV_CACHE_BYTES at a `longest`-token prompt plus the answer budget
        (at least one)."""
        return max(
            1, self.KV_CACHE_BYTES // (self.kv_bytes_per_token() * (longest + max_new_tokens))
        )

    def kv_bytes_per_token(self) -> int:
        """Bytes of KV cache one token takes in this model (keys and values, every layer)."""
        config = self.model.config
        head_dim = getattr(config, "head_dim", None) or (
            config.hidden_size // config.num_attention_heads
        )
        kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        element = 2 if self.dtype == "bfloat16" else 4
        return config.num_hidden_layers * 2 * kv_heads * head_dim * element

    def generate(
        self,
        batch: Sequence[Sequence[Message]],
        max_new_tokens: int,
        sampling: Sampling | None = None,
        *,
        grammar: str | None = None,
        spans: Sequence[Sequence[str]] | None = None,
    ) -> list[Generation]:
        """Answers to a batch; with `grammar` (an llguidance grammar), constrained to it; with
        `spans` (each row's passages), copied from them (models/spans.py). A batch over the KV
        cache budget is answered in slices that fit."""
        rows = [self.encode(self.render(messages)) for messages in batch]
        fit = self._rows_within_kv_budget(max(len(row) for row in rows), max_new_tokens)
        return [
            answer
            for i in range(0, len(batch), fit)
            for answer in self._generate(
                batch[i : i + fit], rows[i : i + fit], max_new_tokens, sampling,
                Constraint(grammar, None if spans is None else spans[i : i + fit]),
            )
        ]  # fmt: skip

    def _generate(
        self,
        batch: Sequence[Sequence[Message]],
        rows: list[list[int]],
        max_new_tokens: int,
        sampling: Sampling | None,
        constraint: Constraint,
    ) -> list[Generation]:
        import torch

        start = time.perf_counter()
        tokenizer = self.tokenizer
        with torch.inference_mode():
            ids, attention, cache = self._generation_inputs(batch, rows)
        decoding = self._decoding(sampling, constraint, len(batch), ids.shape[1])
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=ids,
                attention_mask=attention,
                cache=cache,
                max_new_tokens=max_new_tokens,
                **decoding,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        seconds = time.perf_counter() - start
        logits = None
        if constraint.spans is not None:
            output, logits = output.sequences, output.logits
        return self._generations(output, attention, ids.shape[1], seconds, logits)

    def _decoding(
        self, sampling: Sampling | None, constraint: Constraint, rows: int, width: int
    ) -> dict[str, Any]:
        """generate()'s decoding settings: greedy, else seeded sampling; the constraint's
        logits mask; the logits too when answers are copied from spans."""
        import torch

        decoding: dict[str, Any] = {"do_sample": False}
        if sampling is not None:
            torch.manual_seed(sampling.seed)  # the same seed and batch draw the same samples
            decoding = {"do_sample": True, "temperature": sampling.temperature}
        if constraint.grammar is not None or constraint.spans is not None:
            from transformers import LogitsProcessorList

            decoding["logits_processor"] = LogitsProcessorList([constraint.mask(self, rows, width)])
        if constraint.spans is not None:  # how sure the model is of each span, before the mask
            decoding |= {"output_logits": True, "return_dict_in_generate": True}
        return decoding

    def _generations(
        self, output: Any, attention: Any, width: int, seconds: float, logits: Any
    ) -> list[Generation]:
        """Each row's new tokens, cut after the end-of-sequence token, as a Generation."""
        eos = self.tokenizer.eos_token_id
        results = []
        for index, (row, mask) in enumerate(zip(output, attention, strict=True)):
            new = row[width:].tolist()
            stopped = eos in new
            if stopped:
                new = new[: new.index(eos) + 1]
            results.append(
                Generation(
                    text=self.tokenizer.decode(new, skip_special_tokens=True).strip(),
                    input_tokens=int(mask.sum()),
                    output_tokens=len(new),
                    seconds=seconds,
                    finish_reason="stop" if stopped else "length",
                    compute_seconds=seconds / len(attention),
                    confidence=None
                    if logits is None
                    else mean_logprob([step[index] for step in logits], new),
                )
            )
        return results
