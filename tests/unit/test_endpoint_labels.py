"""How an endpoint scores labels, against fake servers: one replaying responses recorded from
the real llama.cpp server (tests/fixtures/llama-cpp-server/: every request the backend sent
for one conversation in each scoring mode, and the answer, recorded by
bench/endpoint_vs_local.py --record-fixtures), and ones shaped like vLLM's and OpenAI's."""

from __future__ import annotations

import json
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import tunewise.models.endpoint_labels as endpoint_labels
from tunewise.models.backend import Message
from tunewise.models.openai_compat import Endpoint, OpenAICompatible

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "llama-cpp-server"
Handler = Callable[[str, dict[str, Any]], tuple[int, dict[str, Any]]]


class Fake:
    """A server answering every POST through `handler(path, body)`: paths under /v1 without
    it, others (tokenize endpoints) from the root, with their leading "/"."""

    def __init__(self) -> None:
        self.handler: Handler = lambda path, body: (404, {"detail": "Not Found"})
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.app = FastAPI()
        self.app.post("/v1/{path:path}")(self.answer)
        self.app.post("/{path:path}")(self.answer_at_root)  # tokenize endpoints
        self.url = ""

    async def answer_at_root(self, path: str, request: Request) -> JSONResponse:
        return await self.answer(f"/{path}", request)

    async def answer(self, path: str, request: Request) -> JSONResponse:
        body = await request.json()
        self.requests.append((path, body))
        status, content = self.handler(path, body)
        return JSONResponse(content, status)

    def sent(self, path: str) -> list[dict[str, Any]]:
        return [body for p, body in self.requests if p == path]


@pytest.fixture
def fake(home: Path) -> Iterator[Fake]:  # a private TUNEWISE_HOME: templates are kept there
    server = Fake()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server.url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    config = uvicorn.Config(server.app, log_level="error", access_log=False)
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    limit = time.monotonic() + 10
    while not runner.started:
        assert time.monotonic() < limit, "the fake server did not start"
        time.sleep(0.01)
    yield server
    runner.should_exit = True
    thread.join(timeout=5)
    sock.close()


def backend(fake: Fake, model: str = "smollm2") -> OpenAICompatible:
    endpoint = Endpoint(model, fake.url, concurrency=1, backoff_s=0.01, max_retries=1)
    return OpenAICompatible(f"openai-compatible:{model}@{fake.url}", endpoint)


def chat_choice(tokens: list[tuple[str, float, list[tuple[str, float]]]]) -> dict[str, Any]:
    content = [
        {"token": t, "logprob": lp, "top_logprobs": [{"token": a, "logprob": b} for a, b in alts]}
        for t, lp, alts in tokens
    ]
    text = "".join(t for t, _, _ in tokens)
    return {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": {"content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 30, "completion_tokens": len(tokens), "total_tokens": 40},
    }


# ---- the real llama.cpp server, replayed -----------------------------------------------------

RECORDING = json.loads((RECORDED / "intents-3-labels.json").read_text(encoding="utf-8"))
INTENTS: list[str] = RECORDING["labels"]
MESSAGES: list[Message] = RECORDING["messages"]


def key(path: str, body: dict[str, Any]) -> str:
    return json.dumps([path, body], sort_keys=True)


def replay(with_completions: bool = True) -> Handler:
    """Answers as the recorded llama.cpp server did to the very same request; 404 to others
    (and to every completion, without `with_completions`)."""
    answers = {key(e["path"], e["request"]): e for e in RECORDING["exchanges"]}

    def handle(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        found = answers.get(key(path, body))
        if found is None or (path == "completions" and not with_completions):
            return 404, {"detail": "Not Found"}
        return found["status"], found.get("response") or {"detail": "refused"}

    return handle


def recorded_scores(mode: str) -> dict[str, Any]:
    return RECORDING["scored"][mode]


@pytest.fixture
def slow_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every echo counts as too slow (llama-cpp-python's real one takes seconds)."""
    monkeypatch.setattr(endpoint_labels, "SLOW_ECHO_S", -1.0)
    monkeypatch.setattr(endpoint_labels, "SLOW_ECHO_RATIO", 0.0)


@pytest.fixture
def fast_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(endpoint_labels, "SLOW_ECHO_S", 1e9)


def test_llama_cpp_likelihood_by_forced_tokens(fake: Fake, home: Path, slow_echo: None) -> None:
    fake.handler = replay()
    [scores] = backend(fake).score_labels([MESSAGES], INTENTS)
    expected = recorded_scores("auto")
    assert scores.scoring == "likelihood" and scores.label == expected["label"]
    assert scores.logprobs == pytest.approx(expected["logprobs"])
    assert scores.probabilities == pytest.approx(expected["probabilities"])
    # card_lost and card_dispute share their first two tokens: asked for once.
    forced = [b["logit_bias"] for b in fake.sent("completions") if "logit_bias" in b]
    assert forced.count({"12172": 100.0}) == 1 and forced.count({"79": 100.0}) == 2
    kept = json.loads((home / "endpoint-templates.json").read_text(encoding="utf-8"))
    assert kept == {f"{fake.url} smollm2": "chatml forced"}
    fake.requests.clear()
    backend(fake).score_labels([MESSAGES], INTENTS)  # the next run: no probe
    assert not [b for b in fake.sent("completions") if b.get("echo")]


def test_llama_cpp_likelihood_by_echo(fake: Fake, home: Path, fast_echo: None) -> None:
    fake.handler = replay()
    [scores] = backend(fake).score_labels([MESSAGES], INTENTS)
    expected = recorded_scores("echo")
    assert scores.scoring == "likelihood" and scores.label == expected["label"]
    assert scores.logprobs == pytest.approx(expected["logprobs"])
    # The same sums as the local path: each label's tokens and <|im_end|>, from the echoes.
    prompt = fake.sent("completions")[0]
    echoes = {b["prompt"]: b for b in fake.sent("completions")}
    assert prompt["echo"] and len(echoes) == 1 + len(INTENTS)
    assert [p for p, _ in fake.requests[:2]] == ["completions", "chat/completions"]
    kept = json.loads((home / "endpoint-templates.json").read_text(encoding="utf-8"))
    assert kept == {f"{fake.url} smollm2": "chatml"}


def test_llama_cpp_grammar_constrained(fake: Fake) -> None:
    fake.handler = replay()
    model = backend(fake)
    model._labels.likelihood = False  # as a server without completions gets it
    [scores] = model.score_labels([MESSAGES], INTENTS)
    expected = recorded_scores("constrained")
    [body] = fake.sent("chat/completions")
    assert body["grammar"] == 'root ::= "card_lost" | "card_dispute" | "loan_inquiry"'
    assert body["guided_choice"] == INTENTS and body["top_logprobs"] == 20
    assert (scores.scoring, scores.label) == ("constrained", expected["label"])
    assert scores.probabilities == pytest.approx(expected["probabilities"])


def test_llama_cpp_free_answer_first_token(fake: Fake) -> None:
    fake.handler = replay()
    model = backend(fake)
    model._labels.likelihood, model._labels.constraint = False, None
    [scores] = model.score_labels([MESSAGES], INTENTS)
    expected = recorded_scores("first-token")
    assert (scores.scoring, scores.label) == ("first-token", expected["label"])
    assert scores.probabilities == pytest.approx(expected["probabilities"])


def test_a_server_without_completions_is_asked_under_a_constraint(fake: Fake) -> None:
    fake.handler = replay(with_completions=False)
    [scores] = backend(fake).score_labels([MESSAGES], INTENTS)
    assert scores.scoring == "constrained"
    assert [p for p, _ in fake.requests] == ["completions", "chat/completions"]


# ---- vLLM-shaped: echo with BOS, a Llama 3 template --------------------------------------------

PIECES = re.compile(r"<\|[a-z_]+\|>|\w+|\s+|[^\w\s]")
LABEL_LOGPROBS = {"positive": -0.2, "negative": -2.5, "neutral": -1.5}


def vllm(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """vLLM's shapes: the server renders Llama 3 (BOS added by the tokenizer); a completion
    echoes BOS first with a null log-probability."""
    if path == "chat/completions":
        from tunewise.models.likelihood import TEMPLATES

        llama3 = next(t for t in TEMPLATES if t.name == "llama-3")
        prompt = llama3.render(body["messages"]).removeprefix("<|begin_of_text|>")
        count = 1 + len(PIECES.findall(prompt))
        response = chat_choice([("positive", -0.2, [("positive", -0.2), ("negative", -2.5)])])
        response["usage"]["prompt_tokens"] = count
        return 200, response
    pieces = ["<|begin_of_text|>", *PIECES.findall(body["prompt"])]
    values: list[float | None] = [None] + [-3.0] * (len(pieces) - 1)
    for index, piece in enumerate(pieces):
        if piece in LABEL_LOGPROBS:
            values[index] = LABEL_LOGPROBS[piece]
        elif piece == "<|eot_id|>":
            values[index] = -0.01
    rendered = body["prompt"].endswith("<|end_header_id|>\n\n")
    generated = ("positive", -0.2) if rendered else ("The", -1.0)
    logprobs = {
        "tokens": [*pieces, generated[0]],
        "token_logprobs": [*values, generated[1]],
        "top_logprobs": [None] + [{"x": -1.0}] * len(pieces),
        "text_offset": list(range(len(pieces) + 1)),
    }
    usage = {"prompt_tokens": len(pieces), "completion_tokens": 1, "total_tokens": len(pieces) + 1}
    text = body["prompt"] + generated[0]
    choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": "length"}
    return 200, {"object": "text_completion", "choices": [choice], "usage": usage}


def test_vllm_shaped_echo_finds_the_llama3_template(fake: Fake, home: Path) -> None:
    fake.handler = vllm
    labels = list(LABEL_LOGPROBS)
    messages: list[Message] = [
        {"role": "system", "content": "Classify the sentiment."},
        {"role": "user", "content": "Great value, works well."},
    ]
    [scores] = backend(fake, "meta-llama/Llama-3.2-1B-Instruct").score_labels([messages], labels)
    assert scores.scoring == "likelihood" and scores.label == "positive"
    assert scores.logprobs == pytest.approx({k: v - 0.01 for k, v in LABEL_LOGPROBS.items()})
    assert scores.output_tokens == 2  # the label and <|eot_id|>
    kept = json.loads((home / "endpoint-templates.json").read_text(encoding="utf-8"))
    assert list(kept.values()) == ["llama-3-no-bos"]


# ---- OpenAI-shaped: chat only, JSON schema honoured, unknown arguments refused ---------------


def openai(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if path == "completions":  # chat models are not served there
        message = "This is a chat model and not supported in the v1/completions endpoint."
        return 404, {"error": {"message": message, "type": "invalid_request_error"}}
    unknown = [k for k in ("grammar", "guided_choice") if k in body]
    if unknown:
        message = f"Unrecognized request argument supplied: {', '.join(unknown)}"
        return 400, {"error": {"message": message, "type": "invalid_request_error"}}
    assert body["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"]
    return 200, chat_choice(
        [
            ('{"', 0.0, []),
            ("label", 0.0, []),
            ('":"', 0.0, []),
            ("search", math.log(0.9), [("search", math.log(0.9)), ("play", math.log(0.1))]),
            ("_s", math.log(0.7), [("_s", math.log(0.7)), ("_c", math.log(0.3))]),
            ("creening_event", 0.0, []),
            ('"}', 0.0, []),
        ]
    )


SEARCH = ["search_creative_work", "search_screening_event", "play_music"]


def conversation(text: str) -> list[Message]:
    return [{"role": "system", "content": "Classify."}, {"role": "user", "content": text}]


def test_openai_shaped_chat_is_constrained_by_a_json_schema(fake: Fake) -> None:
    fake.handler = openai
    model = backend(fake, "gpt-4.1-mini")
    first, second = model.score_labels([conversation("a"), conversation("b")], SEARCH)
    assert first.scoring == second.scoring == "constrained"
    assert first.label == "search_screening_event"
    assert first.probabilities == pytest.approx(
        {"search_creative_work": 0.27, "search_screening_event": 0.63, "play_music": 0.1}
    )
    chats = fake.sent("chat/completions")
    # Refused once with the plain-choice arguments, then the JSON schema, remembered.
    assert ["grammar" in b for b in chats] == [True, False, False]
    assert ["response_format" in b for b in chats] == [False, True, True]
    assert len(fake.sent("completions")) == 1  # probed once


# ---- a server that ignores constraints, with first-token logprobs only -----------------------


def test_a_shared_first_token_with_the_text_naming_one_label_yields_it(fake: Fake) -> None:
    def ignoring(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path == "completions":
            return 404, {"detail": "Not Found"}
        # The whole answer, but logprobs for its first token only ("search" begins two labels).
        response = chat_choice(
            [("search", math.log(0.6), [("search", math.log(0.6)), ("play", math.log(0.4))])]
        )
        response["choices"][0]["message"]["content"] = "search_screening_event."
        return 200, response

    fake.handler = ignoring
    model = backend(fake)
    scores = model.score_labels([conversation(x) for x in "abc"], SEARCH)
    assert [s.label for s in scores] == ["search_screening_event"] * 3
    assert scores[0].probabilities == pytest.approx(
        {"search_creative_work": 0.0, "search_screening_event": 0.6, "play_music": 0.4}
    )
    assert [s.scoring for s in scores] == ["first-token"] * 3
    chats = fake.sent("chat/completions")
    # The choice constraint was ignored (the answer is no exact label), then the JSON schema:
    # the third request asks for neither.
    assert ["grammar" in b for b in chats] == [True, False, False]
    assert ["response_format" in b for b in chats] == [False, True, False]


def test_no_logprobs_and_no_constraint_reads_the_text(fake: Fake) -> None:
    def plain(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path == "completions":
            return 404, {"detail": "Not Found"}
        response = chat_choice([("It is play_music.", 0.0, [])])
        del response["choices"][0]["logprobs"]
        return 200, response

    fake.handler = plain
    [scores] = backend(fake).score_labels([conversation("x")], SEARCH)
    assert (scores.label, scores.probabilities, scores.scoring) == ("play_music", {}, "parsed")


def test_a_remembered_template_whose_echo_is_gone_falls_back_to_chat(
    fake: Fake, home: Path
) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "endpoint-templates.json").write_text(json.dumps({f"{fake.url} smollm2": "chatml"}))
    fake.handler = replay(with_completions=False)
    model = backend(fake)
    [scores] = model.score_labels([MESSAGES], INTENTS)
    assert scores.scoring == "constrained"
    model.score_labels([MESSAGES], INTENTS)
    assert len(fake.sent("completions")) == 1  # not asked again once it failed


def test_a_slow_echo_without_a_tokenizer_is_scored_by_constraint(
    fake: Fake, home: Path, slow_echo: None
) -> None:
    replayed = replay()

    def no_tokenizer(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if "tokenize" in path:
            return 404, {"detail": "Not Found"}
        return replayed(path, body)

    fake.handler = no_tokenizer
    [scores] = backend(fake).score_labels([MESSAGES], INTENTS)
    assert scores.scoring == "constrained"
    kept = json.loads((home / "endpoint-templates.json").read_text(encoding="utf-8"))
    assert kept == {f"{fake.url} smollm2": "slow-echo"}
    fake.requests.clear()
    backend(fake).score_labels([MESSAGES], INTENTS)
    assert not fake.sent("completions")  # the next run does not probe again
