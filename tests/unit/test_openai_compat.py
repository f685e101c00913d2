"""The OpenAI-compatible backend against a scripted, fault-injecting server on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from conftest import SENTIMENT_TEST
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from tunewise.errors import ModelError
from tunewise.inference.cache import ResponseCache
from tunewise.inference.predict import Prediction, predict
from tunewise.inference.predictor import PromptPredictor
from tunewise.models.backend import BatchIncomplete, Message
from tunewise.models.openai_compat import (
    OPENAI_BASE_URL,
    Endpoint,
    OpenAICompatible,
    parse_spec,
)
from tunewise.task.config import Contract
from tunewise.task.data import Example

LABELS = ["positive", "negative", "neutral"]
KEY = "sk-tunewise-FAKE-7d1e0c9b3a5f4e2d"


# ---- the fake server -----------------------------------------------------------------------


@dataclass
class Reply:
    """What the server does with one request: a status, a body, headers, a delay first."""

    status: int = 200
    body: Any = None  # dict -> JSON, str -> raw text, None -> a completion of `content`
    content: str | None = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    usage: bool = True
    finish: str = "stop"
    logprobs: list[tuple[str, float]] | None = None  # first token's alternatives


def completion(reply: Reply) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": reply.content},
        "finish_reason": reply.finish,
    }
    if reply.logprobs is not None:
        top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in reply.logprobs]
        choice["logprobs"] = {"content": [{**top[0], "top_logprobs": top}]}
    body: dict[str, Any] = {"id": "x", "object": "chat.completion", "choices": [choice]}
    if reply.usage:
        body["usage"] = {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}
    return body


class FakeServer:
    """Replies come from `script` (consumed per request) and then from `rule(body)`; records
    every request and the most requests in flight at once."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.rule: Callable[[dict[str, Any]], Reply] = lambda body: Reply()
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self.chat)
        self.url = ""

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [body for _, body in self.requests]

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append((dict(request.headers), body))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            reply = self.script.pop(0) if self.script else self.rule(body)
            until = time.monotonic() + reply.delay
            while time.monotonic() < until:  # a slow server that notices clients leaving
                await asyncio.sleep(0.02)
                if await request.is_disconnected():
                    return Response(status_code=499)
            if isinstance(reply.body, str):
                return PlainTextResponse(reply.body, reply.status, headers=reply.headers)
            content = reply.body
            if content is None:
                error = {"error": {"message": f"fake {reply.status}"}}
                content = completion(reply) if reply.status == 200 else error
            return JSONResponse(content, reply.status, headers=reply.headers)
        finally:
            self.in_flight -= 1


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    config = uvicorn.Config(
        fake.app, log_level="error", access_log=False, timeout_graceful_shutdown=1
    )
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    limit = time.monotonic() + 10
    while not runner.started:
        assert time.monotonic() < limit, "the fake server did not start"
        time.sleep(0.01)
    yield fake
    runner.should_exit = True
    thread.join(timeout=5)
    sock.close()


def backend(server: FakeServer, **settings: Any) -> OpenAICompatible:
    options = {"backoff_s": 0.01, "timeout_s": 5.0, "deadline_s": 10.0, **settings}
    endpoint = Endpoint("test-model", server.url, **options)
    return OpenAICompatible(f"openai-compatible:test-model@{server.url}", endpoint)


def chat(text: str) -> list[Message]:
    return [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": text}]


# ---- spec parsing --------------------------------------------------------------------------


def test_openai_spec_reads_the_key_from_openai_api_key() -> None:
    assert parse_spec("openai", "gpt-4o-mini") == Endpoint(
        "gpt-4o-mini", OPENAI_BASE_URL, api_key_env="OPENAI_API_KEY"
    )


@pytest.mark.parametrize(
    ("rest", "model", "url"),
    [
        ("llama3@http://127.0.0.1:8000/v1", "llama3", "http://127.0.0.1:8000/v1"),
        ("org/model:q4@https://host.example/v1/", "org/model:q4", "https://host.example/v1"),
        ("name@v2@http://u:p@h:1/v1", "name@v2", "http://u:p@h:1/v1"),
    ],
)
def test_compatible_spec_splits_at_the_last_at_before_a_url(
    rest: str, model: str, url: str
) -> None:
    assert parse_spec("openai-compatible", rest) == Endpoint(model, url)


@pytest.mark.parametrize(
    ("prefix", "rest"),
    [
        ("openai", ""),
        ("openai", "gpt 4"),
        ("openai-compatible", "llama3"),
        ("openai-compatible", "@http://127.0.0.1:8000/v1"),
        ("openai-compatible", "llama3@ftp://host/v1"),
        ("openai-compatible", "llama3@http://"),
        ("anthropic", "claude"),
    ],
)
def test_bad_specs_show_the_expected_form(prefix: str, rest: str) -> None:
    with pytest.raises(ModelError, match="openai"):
        parse_spec(prefix, rest)


def test_endpoint_drops_a_trailing_slash() -> None:
    assert Endpoint("m", "http://h:1/v1/").base_url == "http://h:1/v1"


def test_fingerprint_is_the_url_and_model_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TW_KEY", KEY)
    keyed = OpenAICompatible("s", Endpoint("m", "http://h:1/v1", api_key_env="TW_KEY"))
    plain = OpenAICompatible("s", Endpoint("m", "http://h:1/v1/"))
    assert keyed.fingerprint() == plain.fingerprint()
    assert len(plain.fingerprint()) == 64
    assert (
        plain.fingerprint() != OpenAICompatible("s", Endpoint("n", "http://h:1/v1")).fingerprint()
    )


# ---- requests and retries ------------------------------------------------------------------


def test_generate_sends_a_chat_completion_and_reads_usage(server: FakeServer) -> None:
    server.script = [Reply(content="  Paris.  ", finish="length")]
    [answer] = backend(server).generate([chat("Capital of France?")], max_new_tokens=7)
    assert answer.text == "Paris."
    assert (answer.input_tokens, answer.output_tokens) == (11, 2)
    assert answer.finish_reason == "length"
    assert not answer.tokens_estimated
    assert answer.compute_seconds is None
    assert answer.seconds > 0
    headers, body = server.requests[0]
    assert body == {
        "model": "test-model",
        "messages": chat("Capital of France?"),
        "max_tokens": 7,
        "temperature": 0,
    }
    assert "authorization" not in headers


def test_missing_usage_is_estimated(server: FakeServer) -> None:
    server.script = [Reply(content="x" * 40, usage=False), Reply(content=None, usage=False)]
    model = backend(server, concurrency=1)
    first, empty = model.generate([chat("hello there"), chat("again")], max_new_tokens=16)
    assert first.tokens_estimated and empty.tokens_estimated
    assert first.output_tokens == 10
    assert first.input_tokens == model.count_tokens(chat("hello there"))
    assert (empty.text, empty.output_tokens) == ("", 0)


@pytest.mark.parametrize("retry_after", [None, "0.2"], ids=["backoff", "retry-after"])
def test_429s_are_retried_until_success(server: FakeServer, retry_after: str | None) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    server.script = [Reply(429, {"error": {"message": "slow down"}}, headers=headers)] * 3
    start = time.monotonic()
    [answer] = backend(server).generate([chat("hi")], max_new_tokens=4)
    assert answer.text == "ok"
    assert len(server.requests) == 4
    if retry_after:
        assert time.monotonic() - start >= 3 * 0.2
        assert answer.seconds >= 3 * 0.2  # the request's own time includes its waits


def test_500_forever_fails_after_every_retry(server: FakeServer) -> None:
    server.rule = lambda body: Reply(500, {"error": {"message": "GPU on fire"}})
    with pytest.raises(ModelError) as caught:
        backend(server, max_retries=3).generate([chat("hi")], max_new_tokens=4)
    message = str(caught.value)
    assert len(server.requests) == 4
    assert "HTTP 500" in message and "4 attempts" in message and "GPU on fire" in message
    assert server.url in message and "test-model" in message


def test_a_slow_server_fails_at_the_deadline(server: FakeServer) -> None:
    server.rule = lambda body: Reply(delay=5.0)
    start = time.monotonic()
    with pytest.raises(ModelError, match=r"no answer within the 1\.0 s deadline"):
        backend(server, timeout_s=0.4, deadline_s=1.0).generate([chat("hi")], max_new_tokens=4)
    assert time.monotonic() - start < 2.0  # the deadline, plus slack for a busy machine
    assert len(server.requests) >= 2  # it did retry inside the deadline


def test_a_wait_past_the_deadline_is_not_taken(server: FakeServer) -> None:
    server.rule = lambda body: Reply(429, {"error": "busy"}, headers={"Retry-After": "60"})
    start = time.monotonic()
    with pytest.raises(ModelError, match=r"HTTP 429 \(busy\) after 1 attempt; the 2\.0 s deadline"):
        backend(server, deadline_s=2.0).generate([chat("hi")], max_new_tokens=4)
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("garbage", ["{not json", '{"choices": []}', '{"choices": [{}]}'])
def test_malformed_bodies_are_retried_then_reported(server: FakeServer, garbage: str) -> None:
    server.rule = lambda body: Reply(body=garbage)
    with pytest.raises(ModelError, match="malformed JSON from the server after 3 attempts"):
        backend(server, max_retries=2).generate([chat("hi")], max_new_tokens=4)
    assert len(server.requests) == 3


def test_malformed_then_good_succeeds(server: FakeServer) -> None:
    server.script = [Reply(body="<html>502 Bad Gateway</html>")]
    [answer] = backend(server).generate([chat("hi")], max_new_tokens=4)
    assert answer.text == "ok" and len(server.requests) == 2


def test_a_refused_connection_is_reported(server: FakeServer) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    endpoint = Endpoint("m", f"http://127.0.0.1:{port}/v1", max_retries=1, backoff_s=0.01)
    with pytest.raises(ModelError, match=r"cannot reach the server .* after 2 attempts"):
        OpenAICompatible("s", endpoint).generate([chat("hi")], max_new_tokens=4)


def test_401_fails_at_once_naming_the_variable_not_the_key(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_API_KEY", KEY)
    echoed = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
    server.rule = lambda body: Reply(401, echoed)
    model = backend(server, api_key_env="VLLM_API_KEY")
    with pytest.raises(ModelError) as caught:
        model.generate([chat("hi")], max_new_tokens=4)
    message = str(caught.value)
    assert len(server.requests) == 1
    assert "HTTP 401" in message and "$VLLM_API_KEY" in message
    assert KEY not in message and KEY not in repr(caught.value)


def test_the_key_goes_in_the_authorization_header(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_API_KEY", KEY)
    backend(server, api_key_env="VLLM_API_KEY").generate([chat("hi")], max_new_tokens=4)
    assert server.requests[0][0]["authorization"] == f"Bearer {KEY}"


def test_a_missing_key_fails_at_construction(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    with pytest.raises(ModelError, match=r"\$VLLM_API_KEY is not set"):
        backend(server, api_key_env="VLLM_API_KEY")


def test_404_shows_the_servers_message(server: FakeServer) -> None:
    server.rule = lambda body: Reply(404, {"error": {"message": "The model `x` does not exist"}})
    with pytest.raises(ModelError, match=r"HTTP 404: model not found.*`x` does not exist"):
        backend(server).generate([chat("hi")], max_new_tokens=4)
    assert len(server.requests) == 1


def test_concurrency_is_limited(server: FakeServer) -> None:
    server.rule = lambda body: Reply(content=body["messages"][-1]["content"], delay=0.05)
    model = backend(server, concurrency=3)
    assert model.batch_size == 12
    texts = [f"question {i}" for i in range(14)]
    answers = model.generate([chat(t) for t in texts], max_new_tokens=4)
    assert [a.text for a in answers] == texts  # in the batch's order
    assert 2 <= server.max_in_flight <= 3


def test_works_from_a_worker_thread_and_inside_an_event_loop(server: FakeServer) -> None:
    model = backend(server)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(model.generate, [chat(f"t{i}")], 4) for i in range(2)]
        assert all(f.result()[0].text == "ok" for f in futures)

    async def inside() -> str:
        return model.generate([chat("hi")], max_new_tokens=4)[0].text

    assert asyncio.run(inside()) == "ok"


def test_a_partly_failed_batch_keeps_the_answers(server: FakeServer) -> None:
    def rule(body: dict[str, Any]) -> Reply:
        text = body["messages"][-1]["content"]
        return Reply(500) if text == "bad" else Reply(content=text.upper())

    server.rule = rule
    model = backend(server, max_retries=1)
    with pytest.raises(BatchIncomplete) as caught:
        model.generate([chat("a"), chat("bad"), chat("c")], max_new_tokens=4)
    done = caught.value.done
    assert [d.text if d else None for d in done] == ["A", None, "C"]  # type: ignore[union-attr]
    assert isinstance(caught.value.error, ModelError)
    with pytest.raises(ModelError, match=r"HTTP 500 \(fake 500\) after 2 attempts"):
        model.generate([chat("bad"), chat("bad")], max_new_tokens=4)


# ---- label scoring -------------------------------------------------------------------------


def test_labels_from_logprobs(server: FakeServer) -> None:
    lp = [("positive", math.log(0.6)), (" neg", math.log(0.2)), ("Neutral", math.log(0.1))]
    lp += [("the", math.log(0.05)), ("", math.log(0.05))]
    server.script = [Reply(content="positive", logprobs=lp)]
    [scores] = backend(server).score_labels([chat("great!")], LABELS)
    assert scores.label == "positive"
    assert sum(scores.probabilities.values()) == pytest.approx(1.0)
    assert scores.probabilities["positive"] == pytest.approx(0.6 / 0.9)
    assert scores.probabilities["negative"] == pytest.approx(0.2 / 0.9)
    body = server.bodies[0]
    assert body["logprobs"] is True and body["top_logprobs"] == 20
    assert body["max_tokens"] >= 8


def test_whole_label_logprobs_pick_the_argmax_even_if_the_text_disagrees(
    server: FakeServer,
) -> None:
    # The project's own server reports whole labels as tokens.
    lp = [("neutral", -0.3), ("positive", -1.5), ("negative", -3.0)]
    server.script = [Reply(content="positive", logprobs=lp)]
    [scores] = backend(server).score_labels([chat("meh")], LABELS)
    assert scores.label == "neutral"
    assert max(scores.probabilities.values()) == scores.probabilities["neutral"]


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Negative.", "negative"),
        ('"neutral"', "neutral"),
        ("The sentiment is positive, clearly.", "positive"),
        ("I cannot tell", "I cannot tell"),
        ("positive or negative", "positive or negative"),
    ],
)
def test_labels_from_text_when_there_are_no_logprobs(
    server: FakeServer, text: str, label: str
) -> None:
    server.script = [Reply(content=f"  {text} ", usage=False)]
    [scores] = backend(server).score_labels([chat("review")], LABELS)
    assert scores.label == label
    assert scores.probabilities == {}
    assert scores.tokens_estimated


def test_a_first_token_beginning_two_labels_goes_to_the_one_the_text_names(
    server: FakeServer,
) -> None:
    server.script = [Reply(content="Negative", logprobs=[("Ne", -0.1), ("The", -2.0)])]
    # "ne" begins both "negative" and "neutral": its mass goes to the one the text names.
    [scores] = backend(server).score_labels([chat("review")], LABELS)
    assert scores.label == "negative" and scores.scoring == "first-token"
    assert scores.probabilities == {"positive": 0.0, "negative": 1.0, "neutral": 0.0}


def test_a_server_rejecting_logprobs_is_not_asked_again(server: FakeServer) -> None:
    rejection = {"error": {"message": "logprobs are not supported by this model"}}
    server.script = [Reply(400, rejection), Reply(content="neutral")]
    model = backend(server, concurrency=1)
    [first] = model.score_labels([chat("one")], LABELS)
    [second] = model.score_labels([chat("two")], LABELS)
    assert (first.label, second.label) == ("neutral", "ok")
    assert ["logprobs" in body for body in server.bodies] == [True, False, False]


def test_other_400s_are_not_retried_without_logprobs(server: FakeServer) -> None:
    server.rule = lambda body: Reply(400, {"error": {"message": "messages too long"}})
    with pytest.raises(ModelError, match=r"HTTP 400.*messages too long"):
        backend(server).score_labels([chat("x")], LABELS)
    assert len(server.requests) == 1


# ---- through predict and the response cache ------------------------------------------------


def run_predict(model: OpenAICompatible, c: Contract, cache_path: Path) -> list[Prediction]:
    cache = ResponseCache(cache_path)
    try:
        predictor = PromptPredictor("zero-shot", "zero-shot", model, c, lambda _: ())
        return predict(predictor, TESTS, c.output_format, cache, max_new_tokens=8)
    finally:
        cache.close()


def contract(output_format: dict[str, Any]) -> Contract:
    return Contract.model_validate(
        {
            "objective": "Classify the review.",
            "audience": "Analysts.",
            "source_material": "The sentence.",
            "output_format": output_format,
        }
    )


LABEL = contract({"type": "label", "labels": LABELS})
TEXT = contract({"type": "text"})
TESTS = [Example(f"t-{i}", x, y, f"test.jsonl:{i + 1}") for i, (x, y) in enumerate(SENTIMENT_TEST)]
BROKEN = "the motor died"


@pytest.mark.parametrize("c", [LABEL, TEXT], ids=["label", "text"])
def test_a_failed_input_is_all_a_rerun_sends(
    server: FakeServer, tmp_path: Path, c: Contract
) -> None:
    def rule(body: dict[str, Any]) -> Reply:
        failing = BROKEN in body["messages"][-1]["content"]
        return Reply(503) if failing else Reply(content="neutral")

    server.rule = rule
    model = backend(server, max_retries=1, concurrency=2)
    with pytest.raises(ModelError, match="HTTP 503"):
        run_predict(model, c, tmp_path / "cache.sqlite")
    assert len(server.requests) == len(TESTS) + 1  # one retry of the broken one

    server.rule = lambda body: Reply(content="negative")
    sent = len(server.requests)
    predictions = run_predict(model, c, tmp_path / "cache.sqlite")
    resent = [body["messages"][-1]["content"] for body in server.bodies[sent:]]
    assert len(resent) == 1 and BROKEN in resent[0]
    assert [p.cached for p in predictions] == [e.input != BROKEN for e in TESTS]
    assert [p.output for p in predictions] == [
        "negative" if e.input == BROKEN else "neutral" for e in TESTS
    ]


def test_the_key_is_never_written_down(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    monkeypatch.setenv("TW_SECRET_KEY", KEY)
    model = backend(server, api_key_env="TW_SECRET_KEY")
    server.rule = lambda body: Reply(content="positive", logprobs=[("positive", -0.1)])
    cache_path = tmp_path / "cache.sqlite"
    cache = ResponseCache(cache_path)
    try:
        predictor = PromptPredictor("zero-shot", "zero-shot", model, LABEL, lambda _: ())
        predict(predictor, TESTS, LABEL.output_format, cache, max_new_tokens=8)
        files = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert any(p.name.endswith("-wal") for p in files)
        assert all(KEY.encode() not in p.read_bytes() for p in files)
    finally:
        cache.close()
    assert all(KEY.encode() not in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert all(h["authorization"] == f"Bearer {KEY}" for h, _ in server.requests)
    assert KEY not in repr(model) and KEY not in repr(model.endpoint)
    assert KEY not in repr(dataclasses.asdict(model.endpoint)) and KEY not in str(vars(model))


@pytest.mark.skipif(
    sys.platform == "win32" or threading.current_thread() is not threading.main_thread(),
    reason="needs SIGINT delivered to the main thread",
)
def test_ctrl_c_keeps_the_finished_answers(server: FakeServer, tmp_path: Path) -> None:
    # asyncio.run turns Ctrl-C into cancelling the batch; the finished answers must be cached.
    def rule(body: dict[str, Any]) -> Reply:
        return Reply(content="slow", delay=5.0) if BROKEN in str(body) else Reply()

    server.rule = rule
    model = backend(server)
    # Python's own Ctrl-C handler, as a user's process has it: asyncio.run turns SIGINT into
    # cancelling the batch only under that handler, whatever an earlier test left installed.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_predict(model, TEXT, tmp_path / "cache.sqlite")
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    server.rule = lambda body: Reply()
    sent = len(server.requests)
    predictions = run_predict(model, TEXT, tmp_path / "cache.sqlite")
    assert len(server.requests) == sent + 1
    assert [p.cached for p in predictions] == [e.input != BROKEN for e in TESTS]
