"""The OpenAI chat-completions shapes `tunewise serve` reads and answers with: the request, the
task input taken from its last message, errors in OpenAI's shape, and a label candidate's
probabilities as logprobs."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tunewise.inference.predict import Prediction


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """The OpenAI chat-completions fields the server reads; other sampling fields are accepted
    and ignored (answers are greedy, as measured)."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1)
    stream: bool = False
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)


class ApiError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {
            "error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        }


def task_input(request: ChatRequest, max_chars: int) -> str:
    """The input contract: the last message is the user's input, as non-empty text."""
    last = request.messages[-1]
    if last.role != "user":
        raise ApiError(400, "the last message must be the user's input", "invalid_messages")
    content = last.content
    if isinstance(content, list):  # content parts: only text parts make an input
        if any(part.get("type") != "text" for part in content):
            raise ApiError(400, "only text content parts are supported", "unsupported_content")
        content = "".join(str(part.get("text", "")) for part in content)
    if not content or not content.strip():
        raise ApiError(400, "the user's input is empty", "empty_input", "messages")
    if len(content) > max_chars:
        raise ApiError(
            400,
            f"the input has {len(content):,} characters; this server accepts up to {max_chars:,}",
            "input_too_long",
            "messages",
        )
    return content


def label_logprobs(p: Prediction, top: int | None) -> dict[str, Any] | None:
    """A label candidate's probabilities as OpenAI logprobs, each label one "token"; None for
    generated text (per-token log-probs are not kept)."""
    if not p.probabilities:
        return None

    def entry(label: str, probability: float) -> dict[str, Any]:
        return {"token": label, "logprob": math.log(max(probability, 1e-300)), "bytes": None}

    ranked = sorted(p.probabilities.items(), key=lambda item: -item[1])
    alternatives = [entry(label, prob) for label, prob in ranked[: top or 0]]
    chosen = entry(p.output, p.probabilities.get(p.output, 0.0))
    return {"content": [{**chosen, "top_logprobs": alternatives}], "refusal": None}
