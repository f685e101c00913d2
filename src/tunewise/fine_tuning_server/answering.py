"""Chat completions of the base model and of every fine-tuned model (or checkpoint) the server
trained: the adapter is loaded on demand, merged into a copy of the base weights, and the few
models answered most recently stay loaded.

Answers are greedy. With `logprobs`, each generated token comes with its log-probability and
its `top_logprobs` most likely alternatives, as OpenAI reports them. With `guided_choice` (vLLM's
constraint), every choice is scored whole by its likelihood, exactly as tunewise scores labels
locally, and the answer is the most likely choice; its logprobs then list whole choices.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tunewise.fine_tuning_server.training import free_memory
from tunewise.inference.chat_api import ChatRequest, choice_logprobs, conversation
from tunewise.models.backend import Message
from tunewise.models.local import LocalModel

DEFAULT_MAX_TOKENS = 256
MAX_TOKENS_CAP = 4096


@dataclass(frozen=True)
class ChatAnswer:
    """One choice of a chat completion and its token counts."""

    content: str
    finish_reason: str
    logprobs: dict[str, Any] | None
    prompt_tokens: int
    completion_tokens: int

    def choice(self) -> dict[str, Any]:
        return {
            "message": {"role": "assistant", "content": self.content},
            "finish_reason": self.finish_reason,
            "logprobs": self.logprobs,
        }


class Answerer(Protocol):
    """Answers a chat request with the base model (adapter None) or base + adapter."""

    def answer(self, name: str, adapter: Path | None, request: ChatRequest) -> ChatAnswer: ...


def max_new_tokens(request: ChatRequest) -> int:
    asked = request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS
    return min(asked, MAX_TOKENS_CAP)


class LocalAnswerer:
    """The base LocalModel and adapters merged into it, `keep` models loaded at most; one
    request at a time (a model is not thread-safe)."""

    def __init__(self, base: LocalModel, keep: int = 2) -> None:
        self.base = base
        self.keep = keep
        self.loaded: OrderedDict[Path | None, LocalModel] = OrderedDict()
        self.lock = threading.Lock()

    def model(self, name: str, adapter: Path | None) -> LocalModel:
        if adapter in self.loaded:
            self.loaded.move_to_end(adapter)
            return self.loaded[adapter]
        while len(self.loaded) >= self.keep:
            self.loaded.popitem(last=False)
            free_memory()
        base = self.base
        model = base if adapter is None else LocalModel(
            name, base.folder, base.home, adapter=adapter, dtype=base.dtype
        )  # fmt: skip
        _ = model.model  # load (and merge) now, inside the lock
        self.loaded[adapter] = model
        return model

    def answer(self, name: str, adapter: Path | None, request: ChatRequest) -> ChatAnswer:
        messages = conversation(request)
        with self.lock:
            model = self.model(name, adapter)
            if request.guided_choice:
                return _choose(model, messages, request)
            top = request.top_logprobs if request.logprobs else None
            return generate(model, messages, max_new_tokens(request), request.logprobs, top)


def _choose(model: LocalModel, messages: list[Message], request: ChatRequest) -> ChatAnswer:
    choices = list(dict.fromkeys(request.guided_choice or []))
    [scores] = model.score_labels([messages], choices)
    logprobs = None
    if request.logprobs:
        logprobs = choice_logprobs(scores.label, scores.probabilities, request.top_logprobs)
    return ChatAnswer(scores.label, "stop", logprobs, scores.input_tokens, scores.output_tokens)


def generate(
    model: LocalModel,
    messages: list[Message],
    max_new_tokens: int,
    with_logprobs: bool,
    top: int | None,
) -> ChatAnswer:
    """A greedy answer; with logprobs, each generated token's and its top alternatives'."""
    import torch

    tokenizer, network = model.tokenizer, model.model
    ids = model.encode(model.render(messages))
    inputs = torch.tensor([ids], device=network.device)
    with torch.inference_mode():
        output = network.generate(
            input_ids=inputs,
            attention_mask=torch.ones_like(inputs),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            output_logits=with_logprobs,
            return_dict_in_generate=True,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    new = output.sequences[0, len(ids) :].tolist()
    stopped = tokenizer.eos_token_id in new
    kept = new[: new.index(tokenizer.eos_token_id)] if stopped else new
    text = tokenizer.decode(kept, skip_special_tokens=True)
    logprobs = None
    if with_logprobs:
        content = _token_logprobs(tokenizer, output.logits, kept, top)
        logprobs = {"content": content, "refusal": None}
    return ChatAnswer(text, "stop" if stopped else "length", logprobs, len(ids), len(new))


def _token_logprobs(
    tokenizer: Any, logits: Any, tokens: list[int], top: int | None
) -> list[dict[str, Any]]:
    """OpenAI's logprobs.content: each token's text, log-probability, bytes and alternatives."""
    import torch

    def entry(token_id: int, logprob: float) -> dict[str, Any]:
        text = tokenizer.decode([token_id])
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    content = []
    for step, token_id in zip(logits, tokens, strict=False):
        logprobs = torch.log_softmax(step[0].float(), dim=-1)
        alternatives = []
        if top:
            values, indices = logprobs.topk(top)
            pairs = zip(values.tolist(), indices.tolist(), strict=True)
            alternatives = [entry(int(i), float(v)) for v, i in pairs]
        content.append({**entry(token_id, float(logprobs[token_id])), "top_logprobs": alternatives})
    return content
