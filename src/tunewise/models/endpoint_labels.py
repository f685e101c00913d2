"""How an OpenAI-compatible endpoint scores labels, the most faithful way it allows; each
answer records which (`LabelScores.scoring`):

- `likelihood`: the server has `/v1/completions` and its chat template is one tunewise knows:
  every label is scored whole, as the local backend scores it, from echoed completions (vLLM;
  models/likelihood.py) or, where the echo is too slow to pay for every label of every input
  (llama-cpp-python), from the label's tokens forced one at a time (models/token_forcing.py).
  Found out once per endpoint with the first conversation, and remembered on disk.
- `constrained`: chat only, but the server honours a constraint: a choice among the labels
  (llama.cpp's `grammar`, vLLM's `guided_choice`), else a JSON schema whose one field is an
  enum of the labels (`response_format`, as OpenAI honours it). The label's probabilities are
  read from the logprobs of the tokens that spell it (models/label_reading.py).
- `first-token`: chat, no constraint honoured: the same reading of the free answer's logprobs.
- `parsed`: no logprobs at all: the label the answer's text names.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx

from tunewise.home import tunewise_home
from tunewise.models.backend import LabelScores, Message
from tunewise.models.endpoint import Answer, Endpoint, Failure
from tunewise.models.label_reading import constrained_probabilities, label_probabilities
from tunewise.models.likelihood import (
    Echo,
    ServedTemplate,
    candidates,
    completion_body,
    continuation_logprob,
    matches_chat,
    read_echo,
    render,
    softmax,
    template_named,
)
from tunewise.models.replies import parse_label
from tunewise.models.token_forcing import Post, Tokenizer, label_ids, label_logprobs

LABEL_SCORING_VERSION = 2  # bump when the same answer would be scored otherwise
TOP_LOGPROBS = 20  # OpenAI's maximum
KEY = "label"  # the field of a JSON answer under the response_format constraint
UNSUPPORTED = (400, 404, 405, 422, 501)  # statuses of a server without what was asked
# Words of a server refusing a constraint it does not know (OpenAI: "Unrecognized request
# argument supplied: grammar"; a JSON schema a model cannot follow names response_format).
CONSTRAINT_WORDS = ("grammar", "guided", "response_format", "json_schema", "unrecognized")
WEAKER = {"choice": "json", "json": None}
TEMPLATES_FILE = "endpoint-templates.json"
# An echo slower than this many chat answers to the same prompt, and than SLOW_ECHO_S, is too
# slow to pay once per label and input; such an endpoint is remembered as SLOW.
SLOW_ECHO_RATIO = 10.0
SLOW_ECHO_S = 2.0
SLOW = "slow-echo"  # remembered: echo too slow, and no tokenize endpoint to force tokens
FORCED = " forced"  # remembered after a template's name: echo too slow, tokens forced


class Requester(Protocol):
    """What the scorer needs of the backend (models/openai_compat.py)."""

    endpoint: Endpoint

    async def request(
        self, client: httpx.AsyncClient, body: dict[str, Any], path: str = ...
    ) -> Answer: ...

    def body(self, messages: Sequence[Message], max_tokens: int) -> dict[str, Any]: ...

    def usage(
        self, data: dict[str, Any], messages: Sequence[Message], text: str
    ) -> tuple[int, int, bool]: ...


class LabelScorer:
    """One endpoint's way of scoring labels, found out on first use and then kept."""

    def __init__(self, backend: Requester) -> None:
        self.backend = backend
        self.likelihood: bool | None = None  # None until probed
        self.template: tuple[ServedTemplate, bool] | None = None  # the server's, BOS kept
        self.tokenizer: Tokenizer | None = None  # set where labels are scored by forced tokens
        self.label_ids: dict[str, list[int]] = {}  # each label's tokens, for forced tokens
        self.constraint: str | None = "choice"  # "choice", "json", or None: none honoured
        self.logprobs = True  # cleared once the server says it does not support them

    # ---- likelihood ----------------------------------------------------------------------

    async def probe(self, client: httpx.AsyncClient, messages: Sequence[Message]) -> bool:
        """Whether the endpoint gives full-label likelihood, and with which chat template. An
        echo far slower than a chat answer to the same prompt (llama-cpp-python ranks the whole
        vocabulary in Python for every echoed token) would make every input cost minutes: such
        a server is scored by constraint instead."""
        key = f"{self.backend.endpoint.base_url} {self.backend.endpoint.model}"
        remembered = _remembered().get(key)
        self.likelihood = False
        if remembered == SLOW:
            return False
        name, forced, _ = (remembered or "").partition(FORCED)
        known = template_named(name)
        if known is not None:
            self.template = known
            self.likelihood = await self._find_tokenizer(client) if forced else True
            return self.likelihood
        tried = candidates()
        start = time.monotonic()
        first = await self._echo(client, render(tried[0][1], tried[0][2], messages))
        echo_seconds = time.monotonic() - start
        if first is None:  # no completions endpoint, or no echoed logprobs
            return False
        body = {**self.backend.body(messages, 1), "logprobs": True, "top_logprobs": 1}
        try:
            chat = await self.backend.request(client, body)
        except Failure as failure:
            if failure.status in UNSUPPORTED:
                return False
            raise
        for index, (name, template, keep_bos) in enumerate(tried):
            prompt = render(template, keep_bos, messages)
            echo = first if index == 0 else await self._echo(client, prompt)
            if echo is not None and matches_chat(echo, chat.data):
                self.template = (template, keep_bos)
                if echo_seconds > max(SLOW_ECHO_S, SLOW_ECHO_RATIO * chat.seconds):
                    self.likelihood = await self._find_tokenizer(client)
                    _remember(key, f"{name}{FORCED}" if self.likelihood else SLOW)
                    return self.likelihood
                self.likelihood = True
                _remember(key, name)
                return True
        return False

    async def _find_tokenizer(self, client: httpx.AsyncClient) -> bool:
        self.tokenizer = Tokenizer(self.backend.endpoint.model)
        if await self.tokenizer.find(self._poster(client)):
            return True
        self.tokenizer = None
        return False

    def _poster(self, client: httpx.AsyncClient) -> Post:
        async def post(path: str, body: dict[str, Any]) -> dict[str, Any] | None:
            try:
                return (await self.backend.request(client, body, path)).data
            except Failure as failure:
                if failure.status in UNSUPPORTED:
                    return None
                raise

        return post

    async def _echo(self, client: httpx.AsyncClient, prompt: str) -> Echo | None:
        body = completion_body(self.backend.endpoint.model, prompt)
        try:
            answer = await self.backend.request(client, body, "completions")
        except Failure as failure:
            if failure.status in UNSUPPORTED:
                return None
            raise
        return read_echo(answer.data)

    async def _likelihood(
        self, client: httpx.AsyncClient, messages: Sequence[Message], labels: Sequence[str]
    ) -> LabelScores | None:
        """Every label scored whole; None (and no likelihood from now on) where the echoes
        cannot be read. The label requests go one after another, so a server that keeps the
        last prompt's cache (llama.cpp) reads the shared prompt once."""
        assert self.template is not None
        template, keep_bos = self.template
        start = time.monotonic()
        prompt = render(template, keep_bos, messages)
        if self.tokenizer is not None:
            return await self._forced(client, prompt, labels, start)
        base = await self._echo(client, prompt)
        scored: list[tuple[float, int]] = []
        for label in labels:
            echo = None if base is None else await self._echo(client, prompt + label + template.end)
            read = None if base is None or echo is None else continuation_logprob(base, echo)
            if read is None:
                self.likelihood = False
                return None
            scored.append(read)
        assert base is not None and base.prompt_tokens is not None
        return _scores(labels, scored, base.prompt_tokens, time.monotonic() - start)

    async def _forced(
        self, client: httpx.AsyncClient, prompt: str, labels: Sequence[str], start: float
    ) -> LabelScores | None:
        """Every label scored whole, its tokens forced one at a time (models/token_forcing.py)."""
        assert self.tokenizer is not None and self.template is not None
        post, end = self._poster(client), self.template[0].end
        for label in labels:
            if label not in self.label_ids:
                found = await label_ids(self.tokenizer, post, prompt, label, end)
                if found is None:
                    self.likelihood = False
                    return None
                self.label_ids[label] = found
        ending = await self.tokenizer.ids(post, end)
        if not ending or len(ending) != 1:
            self.likelihood = False
            return None
        usage: list[int] = []

        async def ask(body: dict[str, Any]) -> dict[str, Any] | None:
            data = await post("completions", body)
            if data is not None and body["prompt"] == prompt and not usage:
                usage.append(int((data.get("usage") or {}).get("prompt_tokens") or 0))
            return data

        model = self.backend.endpoint.model
        ids = {label: self.label_ids[label] for label in labels}
        scored = await label_logprobs(ask, model, prompt, labels, ids, (end, ending[0]))
        if scored is None:
            self.likelihood = False
            return None
        return _scores(labels, scored, usage[0] if usage else 0, time.monotonic() - start)

    # ---- chat: constrained, first-token, parsed --------------------------------------------

    async def score(
        self, client: httpx.AsyncClient, messages: Sequence[Message], labels: Sequence[str]
    ) -> LabelScores:
        if self.likelihood and self.template is not None:
            scored = await self._likelihood(client, messages, labels)
            if scored is not None:
                return scored
        answer, constraint = await self._chat(client, messages, labels)
        choice = answer.data["choices"][0]
        text = str(choice["message"].get("content") or "").strip()
        label, probabilities, scoring = self._read(choice, text, labels, constraint)
        inputs, outputs, estimated = self.backend.usage(answer.data, messages, text)
        return LabelScores(
            label, probabilities, inputs, outputs, answer.seconds, estimated, scoring=scoring
        )

    async def _chat(
        self, client: httpx.AsyncClient, messages: Sequence[Message], labels: Sequence[str]
    ) -> tuple[Answer, str | None]:
        """The answer, and the constraint it was asked under. A server refusing logprobs or a
        constraint is asked again without it, and is not asked for it again."""
        while True:
            constraint, logprobs = self.constraint, self.logprobs
            body = self.backend.body(messages, _budget(labels, constraint))
            if logprobs:
                body |= {"logprobs": True, "top_logprobs": TOP_LOGPROBS}
            body |= _constraint_fields(constraint, labels)
            try:
                return await self.backend.request(client, body), constraint
            except Failure as failure:
                refused = failure.body.lower()
                if failure.status not in (400, 422):
                    raise
                if logprobs and "logprob" in refused:
                    self.logprobs = False
                elif constraint is not None and any(w in refused for w in CONSTRAINT_WORDS):
                    if self.constraint == constraint:
                        self.constraint = WEAKER[constraint]
                elif (constraint, logprobs) == (self.constraint, self.logprobs):
                    raise  # nothing another answer has changed since: the request is at fault

    def _read(
        self, choice: dict[str, Any], text: str, labels: Sequence[str], constraint: str | None
    ) -> tuple[str, dict[str, float], str]:
        """The label, its probabilities, and the scoring method that gave them. An answer that
        does not follow the constraint it was asked under shows the server ignored it: it is
        read as a free answer, and the next requests try a weaker constraint."""
        if constraint == "json":
            found = constrained_probabilities(choice, labels, text, KEY)
            if found is not None:
                value, probabilities = found
                return _best(probabilities or {}, value), probabilities or {}, "constrained"
        elif constraint == "choice" and text in labels:
            probabilities = label_probabilities(choice, labels, text)
            return _best(probabilities or {}, text), probabilities or {}, "constrained"
        if constraint is not None and self.constraint == constraint:
            self.constraint = WEAKER[constraint]
        probabilities = label_probabilities(choice, labels, text)
        named = parse_label(text, labels)
        if probabilities:
            return _best(probabilities, named), probabilities, "first-token"
        return named or text, {}, "parsed"  # an invalid answer is kept as it is


def _scores(
    labels: Sequence[str], scored: list[tuple[float, int]], prompt_tokens: int, seconds: float
) -> LabelScores:
    """Likelihood's answer: the softmax of the labels' summed log-probabilities."""
    logprobs = [total for total, _ in scored]
    best = max(range(len(labels)), key=lambda i: logprobs[i])
    return LabelScores(
        label=labels[best],
        probabilities=dict(zip(labels, softmax(logprobs), strict=True)),
        input_tokens=prompt_tokens,
        output_tokens=scored[best][1],
        seconds=seconds,
        logprobs=dict(zip(labels, logprobs, strict=True)),
        scoring="likelihood",
    )


def _best(probabilities: dict[str, float], generated: str | None) -> str:
    """The most probable label; the generated one where it ties for the most (or where there
    are no probabilities)."""
    if not probabilities:
        assert generated is not None
        return generated
    return max(probabilities, key=lambda label: (probabilities[label], label == generated))


def _budget(labels: Sequence[str], constraint: str | None) -> int:
    """Tokens for the longest label even at ~2 characters a token, plus stray punctuation; a
    JSON answer gets a token a character, and its braces and key."""
    longest = max((len(label) for label in labels), default=0)
    if constraint == "json":
        return longest + len(KEY) + 16
    return max(8, longest // 2 + 4)


def _constraint_fields(constraint: str | None, labels: Sequence[str]) -> dict[str, Any]:
    if constraint == "choice":
        choices = " | ".join(json.dumps(label) for label in labels)  # GBNF strings escape so
        return {"grammar": f"root ::= {choices}", "guided_choice": list(labels)}
    if constraint == "json":
        schema = {
            "type": "object",
            "properties": {KEY: {"type": "string", "enum": list(labels)}},
            "required": [KEY],
            "additionalProperties": False,
        }
        format = {"name": "label", "strict": True, "schema": schema}
        return {"response_format": {"type": "json_schema", "json_schema": format}}
    return {}


# ---- the templates that matched, kept between runs -------------------------------------------


def _remembered() -> dict[str, str]:
    try:
        found = json.loads((tunewise_home() / TEMPLATES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _remember(key: str, template: str) -> None:
    """Keep `template` as the one `key` (base URL and model) applies; only found templates are
    kept, so a server that gains an echo is probed again."""
    path = tunewise_home() / TEMPLATES_FILE
    known = _remembered() | {key: template}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    except OSError:
        return  # a home we cannot write to: the next run probes again
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(known, out, indent=1, sort_keys=True)
        os.replace(staging, path)
    except OSError:
        Path(staging).unlink(missing_ok=True)
