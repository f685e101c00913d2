"""Models behind any OpenAI-compatible `/v1/chat/completions` endpoint (OpenAI, vLLM, Ollama,
llama.cpp server).

Each conversation is one HTTP request; a batch runs them concurrently (bounded by a semaphore)
with retries for what is worth retrying (429, 5xx, timeouts, dropped connections, garbled
bodies), and a deadline per request so a stuck server cannot hang a run. The API key is read
from its environment variable at request time and is never stored, cached, logged or echoed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import tenacity
from tenacity import RetryCallState

from tunewise.errors import ModelError
from tunewise.models.backend import BatchIncomplete, Generation, LabelScores, Message, Sampling
from tunewise.models.replies import (
    estimate_tokens,
    label_probabilities,
    parse_label,
    retry_after,
    server_message,
)

OPENAI_BASE_URL = "https://api.openai.com/v1"
MAX_BACKOFF_S = 30.0
TOP_LOGPROBS = 20  # OpenAI's maximum
COMPAT_FORM = "openai-compatible:NAME@http://HOST:PORT/v1"

T = TypeVar("T")


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach one model on an OpenAI-compatible server."""

    model: str  # the server's model id
    base_url: str  # e.g. http://127.0.0.1:8000/v1 (stored without trailing slash)
    api_key_env: str | None = None  # NAME of the variable holding the key, never the key
    concurrency: int = 8  # requests in flight at once
    timeout_s: float = 60.0  # per attempt
    deadline_s: float = 300.0  # per request: all attempts and backoff waits together
    max_retries: int = 5
    backoff_s: float = 0.5  # first backoff; exponential with jitter, capped at 30 s

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if self.concurrency < 1 or self.max_retries < 0 or self.deadline_s <= 0:
            raise ModelError(
                f"endpoint {self.base_url}: concurrency must be >= 1, max_retries >= 0 and "
                "deadline_s > 0"
            )


def parse_spec(prefix: str, rest: str) -> Endpoint:
    """`openai` + "gpt-4o-mini" -> the OpenAI API with $OPENAI_API_KEY;
    `openai-compatible` + "NAME@http://host:port/v1" -> that server, without a key."""
    if prefix == "openai":
        if not rest or any(c.isspace() for c in rest) or "@" in rest:
            raise ModelError(
                f"model spec 'openai:{rest}' should be openai:MODEL (e.g. openai:gpt-4o-mini); "
                f"for other servers use {COMPAT_FORM}"
            )
        return Endpoint(rest, OPENAI_BASE_URL, api_key_env="OPENAI_API_KEY")
    if prefix == "openai-compatible":
        # The LAST '@' before a scheme: model ids may contain '@', URLs may hold user@host.
        splits = [m.start() for m in re.finditer(r"@(?=https?://)", rest)]
        if splits:
            model, url = rest[: splits[-1]], rest[splits[-1] + 1 :]
            try:
                host = httpx.URL(url).host
            except httpx.InvalidURL:
                host = ""
            if model.strip() and host:
                return Endpoint(model, url)
        raise ModelError(
            f"model spec '{prefix}:{rest}' should be {COMPAT_FORM} "
            "(e.g. openai-compatible:llama3@http://127.0.0.1:8000/v1)"
        )
    raise ModelError(f"unknown remote model prefix '{prefix}'; use openai: or openai-compatible:")


@dataclass(eq=False)  # eq=False keeps exceptions hashable
class _Failure(Exception):
    """One attempt's failure: `what` is for the user; `retryable` ones get another attempt."""

    what: str
    retryable: bool
    status: int | None = None
    body: str = ""  # the raw response, to recognise a logprobs rejection; never shown
    retry_after: float | None = None
    timeout: bool = False


@dataclass(frozen=True)
class _Answer:
    """A successful response, and the wall time of its request including retries."""

    data: dict[str, Any]
    seconds: float


class OpenAICompatible:
    """A chat model on an OpenAI-compatible server; satisfies the Backend protocol."""

    remote = True  # compute happens elsewhere; cost code must not price it as ours

    def __init__(self, spec: str, endpoint: Endpoint) -> None:
        self.spec = spec
        self.endpoint = endpoint
        # predict hands over this many at a time; the semaphore keeps `concurrency` in flight,
        # so a chunk several times larger keeps the server busy between chunks' stragglers.
        self.batch_size = endpoint.concurrency * 4
        self._logprobs = True  # cleared once a server says it does not support them
        self._key()  # fail now, not after the first batch, when the key is missing

    def __repr__(self) -> str:
        return f"OpenAICompatible(spec={self.spec!r}, endpoint={self.endpoint!r})"

    def fingerprint(self) -> str:
        # A remote model has no weights to hash: the server and model id stand for them.
        parts = {"base_url": self.endpoint.base_url, "model": self.endpoint.model}
        blob = json.dumps(parts, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """An estimate, as no tokenizer is at hand: about 4 characters per token (typical of
        BPE on English), plus 4 tokens per message for the chat format's role markers and 3
        for the assistant reply's opening."""
        return sum(estimate_tokens(m["content"]) + 4 for m in messages) + 3

    # ---- the two operations -----------------------------------------------------------------

    def generate(
        self,
        batch: Sequence[Sequence[Message]],
        max_new_tokens: int,
        sampling: Sampling | None = None,
    ) -> list[Generation]:
        async def one(client: httpx.AsyncClient, messages: Sequence[Message]) -> Generation:
            body = self._body(messages, max_new_tokens)
            if sampling is not None:  # `seed` is honoured by OpenAI and vLLM, ignored elsewhere
                body.update(temperature=sampling.temperature, seed=sampling.seed)
            answer = await self._request(client, body)
            message = answer.data["choices"][0]["message"]
            text = str(message.get("content") or "").strip()
            finish = answer.data["choices"][0].get("finish_reason")
            inputs, outputs, estimated = self._usage(answer.data, messages, text)
            return Generation(
                text=text,
                input_tokens=inputs,
                output_tokens=outputs,
                seconds=answer.seconds,
                finish_reason="length" if finish == "length" else "stop",
                tokens_estimated=estimated,
            )

        return self._batch(batch, one)

    def score_labels(
        self, batch: Sequence[Sequence[Message]], labels: Sequence[str]
    ) -> list[LabelScores]:
        # Room for the longest label even at ~2 characters per token, plus stray punctuation.
        max_tokens = max(8, max((len(label) for label in labels), default=0) // 2 + 4)

        async def one(client: httpx.AsyncClient, messages: Sequence[Message]) -> LabelScores:
            answer = await self._score_request(client, self._body(messages, max_tokens))
            choice = answer.data["choices"][0]
            text = str(choice["message"].get("content") or "").strip()
            probabilities = label_probabilities(choice, labels)
            if probabilities:
                label = max(probabilities, key=probabilities.__getitem__)
            else:  # no logprobs, or none on a label: read the text; keep invalid answers as-is
                label, probabilities = parse_label(text, labels) or text, {}
            inputs, outputs, estimated = self._usage(answer.data, messages, text)
            return LabelScores(label, probabilities, inputs, outputs, answer.seconds, estimated)

        return self._batch(batch, one)

    async def _score_request(self, client: httpx.AsyncClient, body: dict[str, Any]) -> _Answer:
        if self._logprobs:
            try:
                return await self._request(
                    client, {**body, "logprobs": True, "top_logprobs": TOP_LOGPROBS}
                )
            except _Failure as failure:
                if failure.status != 400 or "logprob" not in failure.body.lower():
                    raise
                self._logprobs = False  # this server never will; stop asking
        return await self._request(client, body)

    # ---- batches --------------------------------------------------------------------------

    def _batch(
        self,
        batch: Sequence[Sequence[Message]],
        one: Callable[[httpx.AsyncClient, Sequence[Message]], Awaitable[T]],
    ) -> list[T]:
        if not batch:
            return []
        headers = self._headers()

        async def main() -> list[T | BaseException]:
            slots = asyncio.Semaphore(self.endpoint.concurrency)
            limits = httpx.Limits(max_connections=self.endpoint.concurrency)

            async def guarded(client: httpx.AsyncClient, messages: Sequence[Message]) -> T:
                async with slots:
                    try:
                        return await one(client, messages)
                    except _Failure as failure:
                        raise self._error(failure.what) from None

            async with httpx.AsyncClient(headers=headers, limits=limits) as client:
                tasks = [asyncio.ensure_future(guarded(client, m)) for m in batch]
                try:
                    return await asyncio.gather(*tasks, return_exceptions=True)
                except asyncio.CancelledError:
                    # Ctrl-C under asyncio.run cancels us: keep what finished, as one_by_one does.
                    await asyncio.gather(*tasks, return_exceptions=True)  # let the rest unwind
                    done = [None if t.cancelled() or t.exception() else t.result() for t in tasks]
                    if any(d is not None for d in done):
                        raise BatchIncomplete(done, KeyboardInterrupt()) from None  # type: ignore[arg-type]
                    raise

        results = _run(main())
        errors = [r for r in results if isinstance(r, BaseException)]
        if not errors:
            return results  # type: ignore[return-value]
        if len(errors) == len(results):
            raise errors[0]
        done = [None if isinstance(r, BaseException) else r for r in results]
        raise BatchIncomplete(done, errors[0]) from errors[0]  # type: ignore[arg-type]

    # ---- one request, with retries ------------------------------------------------------------

    async def _request(self, client: httpx.AsyncClient, body: dict[str, Any]) -> _Answer:
        endpoint = self.endpoint
        start = time.monotonic()
        deadline = start + endpoint.deadline_s
        # wait_exponential + wait_random rather than wait_exponential_jitter, whose arguments
        # changed across tenacity releases.
        backoff = tenacity.wait_exponential(multiplier=endpoint.backoff_s)
        backoff += tenacity.wait_random(0, endpoint.backoff_s)

        def wait(state: RetryCallState) -> float:
            failure = state.outcome.exception() if state.outcome else None
            if isinstance(failure, _Failure) and failure.retry_after is not None:
                return failure.retry_after
            return min(MAX_BACKOFF_S, float(backoff(state)))

        def stop(state: RetryCallState) -> bool:
            # tenacity computes the wait before asking stop, so a wait that would end past the
            # deadline stops now instead of sleeping into a certain failure.
            late = time.monotonic() + state.upcoming_sleep >= deadline
            return state.attempt_number > endpoint.max_retries or late

        attempts = 0
        try:
            retry = tenacity.retry_if_exception(lambda e: isinstance(e, _Failure) and e.retryable)
            async for attempt in tenacity.AsyncRetrying(
                stop=stop, wait=wait, retry=retry, reraise=True
            ):
                with attempt:
                    attempts += 1
                    data = await self._attempt(client, body, deadline)
                    return _Answer(data, time.monotonic() - start)
        except _Failure as failure:
            if not failure.retryable:
                raise
            tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
            if attempts <= endpoint.max_retries:  # stopped early: the deadline, not the count
                if failure.timeout:
                    what = f"no answer within the {endpoint.deadline_s} s deadline ({tries})"
                else:
                    what = f"{failure.what} after {tries}; the {endpoint.deadline_s} s deadline"
                    what += " would pass before the next try"
            elif failure.timeout:
                what = f"no answer within {endpoint.timeout_s} s, {tries}"
            else:
                what = f"{failure.what} after {tries}"
            raise _Failure(what, False) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _attempt(
        self, client: httpx.AsyncClient, body: dict[str, Any], deadline: float
    ) -> dict[str, Any]:
        left = max(min(self.endpoint.timeout_s, deadline - time.monotonic()), 0.001)
        url = f"{self.endpoint.base_url}/chat/completions"
        try:
            # httpx's timeout is per read/write; asyncio.timeout bounds the whole attempt.
            async with asyncio.timeout(left):
                response = await client.post(url, json=body, timeout=left)
        except (httpx.TimeoutException, TimeoutError):
            raise _Failure("timed out", True, timeout=True) from None
        except httpx.TransportError as error:
            what = f"cannot reach the server ({type(error).__name__})"
            raise _Failure(what, True) from None
        status = response.status_code
        if status == 200:
            try:
                data = response.json()
                if not isinstance(data["choices"][0]["message"], dict):
                    raise TypeError
                return data  # type: ignore[no-any-return]
            except (ValueError, LookupError, TypeError):
                raise _Failure("malformed JSON from the server", True) from None
        detail = self._redact(server_message(response))
        retryable = status in (408, 429) or status >= 500  # 408: the server's own timeout
        if retryable:
            what = f"HTTP {status}" + (f" ({detail})" if detail else "")
            wait = retry_after(response)
            raise _Failure(what, True, status, retry_after=wait)
        raise _Failure(self._explain(status, detail), False, status, body=response.text)

    def _explain(self, status: int, detail: str) -> str:
        """What a non-retryable status means, in words a user can act on."""
        name = self.endpoint.api_key_env
        if status in (401, 403):
            what = f"the server rejected the key from ${name}" if name else "the server wants a key"
        elif status == 404:
            what = "model not found, or the URL does not end in the API root (often /v1)"
        else:
            what = "the server refused the request"
        return f"HTTP {status}: {what}" + (f": {detail}" if detail else "")

    # ---- helpers ----------------------------------------------------------------------------

    def _body(self, messages: Sequence[Message], max_tokens: int) -> dict[str, Any]:
        return {
            "model": self.endpoint.model,
            "messages": [dict(m) for m in messages],
            "max_tokens": max_tokens,
            "temperature": 0,
        }

    def _usage(
        self, data: dict[str, Any], messages: Sequence[Message], text: str
    ) -> tuple[int, int, bool]:
        usage = data.get("usage")
        if isinstance(usage, dict):
            inputs, outputs = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(inputs, int) and isinstance(outputs, int):
                return inputs, outputs, False
        return self.count_tokens(messages), estimate_tokens(text), True

    def _key(self) -> str | None:
        name = self.endpoint.api_key_env
        if name is None:
            return None
        key = os.environ.get(name, "").strip()
        if not key:
            raise ModelError(
                f"{self.spec}: the API key variable ${name} is not set; export {name}=<your key>"
            )
        return key

    def _headers(self) -> dict[str, str]:
        key = self._key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _redact(self, text: str) -> str:
        # Some servers echo the key they rejected; it must not reach a message.
        name = self.endpoint.api_key_env
        key = os.environ.get(name, "").strip() if name else ""
        return text.replace(key, "***") if key else text

    def _error(self, what: str) -> ModelError:
        return ModelError(f"{self.endpoint.base_url} model '{self.endpoint.model}': {what}")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also from inside a running loop (where it must go to its own thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
