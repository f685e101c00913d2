"""Reading an OpenAI-compatible server's replies: the server's own error words, Retry-After,
the label a free-text answer names, and a token estimate for servers that report no usage.
Label probabilities from logprobs are read in models/label_reading.py."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import httpx


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the HTTP-date form is rare from these servers; ignored)."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def server_message(response: httpx.Response) -> str:
    """The server's own words: OpenAI's {"error": {"message"}}, FastAPI's {"detail"}, or text."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        found = error.get("message") if isinstance(error, dict) else error or data.get("detail")
        text = str(found) if found else response.text
    else:
        text = response.text
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:199] + "…"


def parse_label(text: str, labels: Sequence[str]) -> str | None:
    """The label a free-text answer names: exactly, or as the only label among its words."""
    cleaned = text.strip().strip("\"'`*_.,;:!?()[]{}<> \t\n").casefold()
    for label in labels:
        if label.casefold() == cleaned:
            return label
    folded = text.casefold()
    named = [
        label
        for label in labels
        if re.search(rf"(?<!\w){re.escape(label.casefold())}(?!\w)", folded)
    ]
    return named[0] if len(named) == 1 else None
