"""Where an OpenAI-compatible model is (`Endpoint`, parsed from a model spec), and what one
request to it gives: an `Answer`, or a `Failure` that says whether another attempt may help."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import httpx

from tunewise.errors import ModelError

OPENAI_BASE_URL = "https://api.openai.com/v1"
COMPAT_FORM = "openai-compatible:NAME@http://HOST:PORT/v1"


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

    def api_key(self, where: str) -> str | None:
        """The key from its variable (None when the endpoint takes none); a missing or empty
        variable is an error naming `where` and the variable, never a key."""
        name = self.api_key_env
        if name is None:
            return None
        key = os.environ.get(name, "").strip()
        if not key:
            raise ModelError(
                f"{where}: the API key variable ${name} is not set; export {name}=<your key>"
            )
        return key


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
class Failure(Exception):
    """One attempt's failure: `what` is for the user; `retryable` ones get another attempt."""

    what: str
    retryable: bool
    status: int | None = None
    body: str = ""  # the raw response, to recognise a logprobs rejection; never shown
    retry_after: float | None = None
    timeout: bool = False


@dataclass(frozen=True)
class Answer:
    """A successful response, and the wall time of its request including retries."""

    data: dict[str, Any]
    seconds: float
