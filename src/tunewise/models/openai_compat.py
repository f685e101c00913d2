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
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import tenacity
from tenacity import RetryCallState

from tunewise.errors import ModelError
from tunewise.models.backend import BatchIncomplete, Generation, LabelScores, Message, Sampling
from tunewise.models.endpoint import (
    COMPAT_FORM,
    OPENAI_BASE_URL,
    Answer,
    Endpoint,
    Failure,
    parse_spec,
)
from tunewise.models.endpoint_labels import LABEL_SCORING_VERSION, LabelScorer
from tunewise.models.replies import estimate_tokens, retry_after, server_message

__all__ = ["COMPAT_FORM", "OPENAI_BASE_URL", "Endpoint", "OpenAICompatible", "parse_spec"]

MAX_BACKOFF_S = 30.0

T = TypeVar("T")


class OpenAICompatible:
    """A chat model on an OpenAI-compatible server; satisfies the Backend protocol."""

    remote = True  # compute happens elsewhere; cost code must not price it as ours

    def __init__(self, spec: str, endpoint: Endpoint) -> None:
        self.spec = spec
        self.endpoint = endpoint
        # predict hands over this many at a time; the semaphore keeps `concurrency` in flight,
        # so a chunk several times larger keeps the server busy between chunks' stragglers.
        self.batch_size = endpoint.concurrency * 4
        self._labels = LabelScorer(self)  # how this endpoint scores labels, once found out
        self._key()  # fail now, not after the first batch, when the key is missing

    def __repr__(self) -> str:
        return f"OpenAICompatible(spec={self.spec!r}, endpoint={self.endpoint!r})"

    def fingerprint(self) -> str:
        # A remote model has no weights to hash: the server and model id stand for them, and
        # the version of how labels are scored (answers scored otherwise are other answers).
        parts: dict[str, Any] = {"base_url": self.endpoint.base_url, "model": self.endpoint.model}
        parts["label_scoring"] = LABEL_SCORING_VERSION
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
            body = self.body(messages, max_new_tokens)
            if sampling is not None:  # `seed` is honoured by OpenAI and vLLM, ignored elsewhere
                body.update(temperature=sampling.temperature, seed=sampling.seed)
            answer = await self.request(client, body)
            message = answer.data["choices"][0]["message"]
            text = str(message.get("content") or "").strip()
            finish = answer.data["choices"][0].get("finish_reason")
            inputs, outputs, estimated = self.usage(answer.data, messages, text)
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
        """Full-label likelihood where the server echoes completion logprobs, else the label
        read from a (constrained, where the server honours it) chat answer: see
        models/endpoint_labels.py. Each answer records which."""
        if not batch:
            return []
        scorer = self._labels
        if scorer.likelihood is None:
            self._batch(batch[:1], scorer.probe)
        return self._batch(batch, lambda client, messages: scorer.score(client, messages, labels))

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
                    except Failure as failure:
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

    async def request(
        self, client: httpx.AsyncClient, body: dict[str, Any], path: str = "chat/completions"
    ) -> Answer:
        """One request, with retries, to `path` under the base URL; raises Failure."""
        endpoint = self.endpoint
        start = time.monotonic()
        deadline = start + endpoint.deadline_s
        # wait_exponential + wait_random rather than wait_exponential_jitter, whose arguments
        # changed across tenacity releases.
        backoff = tenacity.wait_exponential(multiplier=endpoint.backoff_s)
        backoff += tenacity.wait_random(0, endpoint.backoff_s)

        def wait(state: RetryCallState) -> float:
            failure = state.outcome.exception() if state.outcome else None
            if isinstance(failure, Failure) and failure.retry_after is not None:
                return failure.retry_after
            return min(MAX_BACKOFF_S, float(backoff(state)))

        def stop(state: RetryCallState) -> bool:
            # tenacity computes the wait before asking stop, so a wait that would end past the
            # deadline stops now instead of sleeping into a certain failure.
            late = time.monotonic() + state.upcoming_sleep >= deadline
            return state.attempt_number > endpoint.max_retries or late

        attempts = 0
        try:
            retry = tenacity.retry_if_exception(lambda e: isinstance(e, Failure) and e.retryable)
            async for attempt in tenacity.AsyncRetrying(
                stop=stop, wait=wait, retry=retry, reraise=True
            ):
                with attempt:
                    attempts += 1
                    data = await self._attempt(client, body, deadline, path)
                    return Answer(data, time.monotonic() - start)
        except Failure as failure:
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
            raise Failure(what, False) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _attempt(
        self, client: httpx.AsyncClient, body: dict[str, Any], deadline: float, path: str
    ) -> dict[str, Any]:
        left = max(min(self.endpoint.timeout_s, deadline - time.monotonic()), 0.001)
        # A path from "/" is at the server's root (tokenize endpoints), others under the API's.
        base = self.endpoint.base_url
        url = (
            f"{httpx.URL(base).copy_with(path=path)}" if path.startswith("/") else f"{base}/{path}"
        )
        try:
            # httpx's timeout is per read/write; asyncio.timeout bounds the whole attempt.
            async with asyncio.timeout(left):
                response = await client.post(url, json=body, timeout=left)
        except (httpx.TimeoutException, TimeoutError):
            raise Failure("timed out", True, timeout=True) from None
        except httpx.TransportError as error:
            what = f"cannot reach the server ({type(error).__name__})"
            raise Failure(what, True) from None
        status = response.status_code
        if status == 200:
            try:
                data = response.json()
                shape = {"chat/completions": ("message", dict), "completions": ("text", str)}
                if path in shape and not isinstance(
                    data["choices"][0][shape[path][0]], shape[path][1]
                ):
                    raise TypeError
                if not isinstance(data, dict):
                    raise TypeError
                return data
            except (ValueError, LookupError, TypeError):
                raise Failure("malformed JSON from the server", True) from None
        detail = self._redact(server_message(response))
        retryable = status in (408, 429) or status >= 500  # 408: the server's own timeout
        if retryable:
            what = f"HTTP {status}" + (f" ({detail})" if detail else "")
            wait = retry_after(response)
            raise Failure(what, True, status, retry_after=wait)
        raise Failure(self._explain(status, detail), False, status, body=response.text)

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

    def body(self, messages: Sequence[Message], max_tokens: int) -> dict[str, Any]:
        return {
            "model": self.endpoint.model,
            "messages": [dict(m) for m in messages],
            "max_tokens": max_tokens,
            "temperature": 0,
        }

    def usage(
        self, data: dict[str, Any], messages: Sequence[Message], text: str
    ) -> tuple[int, int, bool]:
        usage = data.get("usage")
        if isinstance(usage, dict):
            inputs, outputs = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(inputs, int) and isinstance(outputs, int):
                return inputs, outputs, False
        return self.count_tokens(messages), estimate_tokens(text), True

    def _key(self) -> str | None:
        return self.endpoint.api_key(self.spec)

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
