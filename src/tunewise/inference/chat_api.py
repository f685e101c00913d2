"""The OpenAI chat-completions shapes `tunewise serve` and `tunewise fine-tuning-server` read
and answer with: the request (read within a size limit), the task input taken from its last
message, the completion, errors in OpenAI's shape (and the handlers that answer with them), the
bearer-key and request-size guard, and label probabilities as logprobs."""

from __future__ import annotations

import math
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException

from tunewise.inference.predict import Prediction
from tunewise.models.backend import Message


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
    # vLLM's choice constraint; the fine-tuning server answers with the most likely choice.
    guided_choice: list[str] | None = Field(default=None, min_length=1)


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


def conversation(request: ChatRequest) -> list[Message]:
    """The request's messages as chat turns (a developer message is a system one), text only."""
    roles = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
    turns: list[Message] = []
    for index, message in enumerate(request.messages):
        role = roles.get(message.role)
        if role is None:
            raise ApiError(
                400, f"messages[{index}]: role '{message.role}' is not supported; use "
                "system, developer, user or assistant", "unsupported_role", f"messages.{index}",
            )  # fmt: skip
        content = message.content or ""
        if isinstance(content, list):
            if any(part.get("type") != "text" for part in content):
                raise ApiError(400, "only text content parts are supported", "unsupported_content")
            content = "".join(str(part.get("text", "")) for part in content)
        turns.append({"role": role, "content": content})  # type: ignore[typeddict-item]
    return turns


def label_logprobs(p: Prediction, top: int | None) -> dict[str, Any] | None:
    """A label candidate's probabilities as OpenAI logprobs, each label one "token"; None for
    generated text (per-token log-probs are not kept)."""
    if not p.probabilities:
        return None
    return choice_logprobs(p.output, p.probabilities, top)


def choice_logprobs(
    chosen: str, probabilities: Mapping[str, float], top: int | None
) -> dict[str, Any]:
    """Probabilities of whole choices (labels) as OpenAI logprobs, each choice one "token"."""

    def entry(label: str, probability: float) -> dict[str, Any]:
        return {"token": label, "logprob": math.log(max(probability, 1e-300)), "bytes": None}

    ranked = sorted(probabilities.items(), key=lambda item: -item[1])
    alternatives = [entry(label, prob) for label, prob in ranked[: top or 0]]
    picked = entry(chosen, probabilities.get(chosen, 0.0))
    return {"content": [{**picked, "top_logprobs": alternatives}], "refusal": None}


def completion_body(
    model: str,
    choice: Mapping[str, Any],
    prompt_tokens: int,
    completion_tokens: int,
) -> dict[str, Any]:
    """A chat.completion object with one choice ({message, finish_reason, logprobs}) and usage."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, **choice}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def check_single_answer(request: ChatRequest) -> None:
    """Answers are greedy and whole: no streaming, one choice."""
    if request.stream:
        raise ApiError(
            400, "streaming is not supported; send stream: false", "unsupported", "stream"
        )
    if request.n != 1:
        raise ApiError(400, "only n=1 is supported (answers are greedy)", "unsupported", "n")


# ---- the HTTP plumbing both servers share ----------------------------------------------------


def answer_errors_as_openai(app: FastAPI) -> None:
    """Every error, ours, Starlette's and a malformed request's, in OpenAI's error shape."""
    app.exception_handler(ApiError)(_api_error)
    app.exception_handler(HTTPException)(_http_error)
    app.exception_handler(RequestValidationError)(_invalid)


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    error = ApiError(exc.status_code, str(exc.detail), "http_error")
    return JSONResponse(error.body(), exc.status_code)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(ApiError(400, str(exc), "invalid_request").body(), 400)


Middleware = Callable[[Request, Callable[[Request], Awaitable[Any]]], Awaitable[Any]]


def key_and_size_guard(api_key: str | None, limit: Callable[[Request], int]) -> Middleware:
    """Middleware: the bearer key on /v1/ routes (when there is one), and the declared size of
    every request within `limit(request)` bytes."""

    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        if request.url.path.startswith("/v1/") and api_key is not None:
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                error = ApiError(401, "missing or incorrect API key", "invalid_api_key")
                return JSONResponse(error.body(), status_code=401)
        declared = request.headers.get("content-length")
        most = limit(request)
        if declared is not None and declared.isdigit() and int(declared) > most:
            return JSONResponse(too_large(most).body(), status_code=413)
        return await call_next(request)

    return guard


async def read_chat_request(request: Request, max_bytes: int) -> ChatRequest:
    """The request's body, read within `max_bytes` even without a Content-Length, parsed."""
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise too_large(max_bytes)
    try:
        return ChatRequest.model_validate_json(bytes(body))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ApiError(400, f"{where}: {first['msg']}", "invalid_request", where) from None


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"the request is larger than {limit:,} bytes", "request_too_large")
