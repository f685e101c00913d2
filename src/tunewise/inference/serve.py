"""`tunewise serve`: a measured candidate (its prompt assembly, adapter and retriever) as an
OpenAI-compatible endpoint: /v1/chat/completions, /v1/models and /health.

The candidate is rebuilt from the run folder exactly as it was measured (records/rebuild.py:
the task as the run used it, the same training data, the run's own adapter copy, the same
document index). The last user message of a request is the task input; the candidate's
own prompt (contract system prompt, demos, passages) wraps it, as in the run. Answers go through
the shared response cache, so an input the run measured is answered exactly as measured.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from tunewise.core.specs import CandidateSpec
from tunewise.errors import TunewiseError
from tunewise.evaluation import validate
from tunewise.home import tunewise_home
from tunewise.inference.cache import ResponseCache
from tunewise.inference.chat_api import (
    ApiError,
    ChatRequest,
    answer_errors_as_openai,
    check_single_answer,
    completion_body,
    key_and_size_guard,
    label_logprobs,
    read_chat_request,
    task_input,
)
from tunewise.inference.predict import Prediction, predict
from tunewise.inference.predictor import Predictor
from tunewise.inference.repair import repair, repairs_for
from tunewise.models.constrained import ConstrainedModel
from tunewise.models.local import LocalModel
from tunewise.task.config import Task
from tunewise.task.data import Example

MAX_REQUEST_BYTES = 1_000_000
MAX_INPUT_CHARS = 32_000
MAX_TOKENS_CAP = 4096


@dataclass
class ServedCandidate:
    """A rebuilt candidate and what its answers must look like."""

    name: str
    task: Task
    predictor: Predictor
    cache: ResponseCache
    lock: threading.Lock
    max_repairs: int = 0  # as measured: invalid answers are re-asked with the reason

    def answer(self, text: str, max_tokens: int | None) -> Prediction:
        """One answer, through the cache; one request at a time (the model is not
        thread-safe, and the cache connection is shared)."""
        budget = self.task.max_new_tokens or 64
        if max_tokens is not None:
            budget = min(max_tokens, MAX_TOKENS_CAP)
        example = Example(id="request", input=text, output="", source="request")
        output_format = self.task.contract.output_format
        with self.lock:
            answers = predict(
                self.predictor, [example], output_format, self.cache, max_new_tokens=budget
            )
            if self.max_repairs:
                answers, _ = repair(
                    self.predictor,
                    [example],
                    answers,
                    output_format,
                    self.cache,
                    max_new_tokens=budget,
                    max_repairs=self.max_repairs,
                )
        return answers[0]


def serving(name: str, task: Task, spec: CandidateSpec, predictor: Predictor) -> ServedCandidate:
    """A rebuilt candidate (records/rebuild.py rebuilds one from its run folder), its model
    loaded, ready to answer."""
    if isinstance(predictor.backend, (LocalModel, ConstrainedModel)):
        _ = predictor.backend.model  # load now, so the first request is not the slow one
    cache = ResponseCache(tunewise_home() / "cache.sqlite", any_thread=True)
    return ServedCandidate(name, task, predictor, cache, threading.Lock(), repairs_for(task, spec))


# ---- the HTTP side ---------------------------------------------------------------------------


def completion(served: ServedCandidate, request: ChatRequest, p: Prediction) -> dict[str, Any]:
    """The chat.completion response for one answer, with usage and the candidate's sources."""
    choice: dict[str, Any] = {
        "message": {"role": "assistant", "content": p.output},
        "finish_reason": p.finish_reason,
        "logprobs": label_logprobs(p, request.top_logprobs) if request.logprobs else None,
    }
    return {
        **completion_body(served.name, choice, p.input_tokens, p.output_tokens),
        "tunewise": {
            "strategy": served.predictor.strategy,
            "sources": list(p.sources),
            "latency_ms": round(p.latency_ms, 3),
            "cached": p.cached,
            "repairs": p.repairs,
            "invalid_reason": validate(served.task.contract.output_format, p.output),
        },
    }


@dataclass(frozen=True)
class _Serving:
    """What the routes read: the candidate, its key and the request limits."""

    served: ServedCandidate
    api_key: str | None
    max_request_bytes: int
    max_input_chars: int


def create_app(
    served: ServedCandidate,
    *,
    api_key: str | None = None,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    max_input_chars: int = MAX_INPUT_CHARS,
) -> FastAPI:
    """The FastAPI application serving one candidate."""
    app = FastAPI(title=f"tunewise: {served.name}", docs_url=None, redoc_url=None)
    app.state.serving = _Serving(served, api_key, max_request_bytes, max_input_chars)
    answer_errors_as_openai(app)
    app.middleware("http")(key_and_size_guard(api_key, lambda _: max_request_bytes))
    app.get("/health")(health)
    app.get("/v1/models")(models)
    app.get("/v1/models/{model_id}")(model)
    app.post("/v1/chat/completions")(chat)
    return app


def _serving(request: Request) -> _Serving:
    serving: _Serving = request.app.state.serving
    return serving


def health(request: Request) -> dict[str, Any]:
    served = _serving(request).served
    return {"status": "ok", "candidate": served.name, "strategy": served.predictor.strategy}


def models(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": [_model_card(_serving(request).served)]}


def model(request: Request, model_id: str) -> dict[str, Any]:
    served = _serving(request).served
    _check_model(served, model_id)
    return _model_card(served)


async def chat(request: Request) -> JSONResponse:
    """One chat completion: the last user message is the task input, answered as measured."""
    serving = _serving(request)
    served = serving.served
    parsed = await read_chat_request(request, serving.max_request_bytes)
    _check_model(served, parsed.model)
    check_single_answer(parsed)
    text = task_input(parsed, serving.max_input_chars)
    budget = parsed.max_completion_tokens or parsed.max_tokens
    try:
        answer = await run_in_threadpool(served.answer, text, budget)
    except TunewiseError as exc:
        raise ApiError(502, str(exc), "model_error") from None
    return JSONResponse(completion(served, parsed, answer))


def _check_model(served: ServedCandidate, model_id: str) -> None:
    if model_id != served.name:
        raise ApiError(
            404,
            f"the model '{model_id}' does not exist; this server serves '{served.name}'",
            "model_not_found",
            "model",
        )


def _model_card(served: ServedCandidate) -> dict[str, Any]:
    return {"id": served.name, "object": "model", "created": 0, "owned_by": "tunewise"}
