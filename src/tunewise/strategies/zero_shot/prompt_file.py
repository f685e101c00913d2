"""A zero-shot candidate with `prompt_file:` measures a prompt written elsewhere, exactly as
written: the messages of a `tunewise export --format openai-messages` file (or a bare list of
messages, such as the promptfoo export's prompt.json), the input in place of `{{input}}` in the
last user message. Nothing is built from the contract; it only decides how answers are scored."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.core.setup import Setup
from tunewise.errors import TunewiseError
from tunewise.inference.predictor import Request
from tunewise.models.backend import Backend, Message
from tunewise.task.config import Task
from tunewise.task.data import Example

PLACEHOLDER = "{{input}}"
ROLES = ("system", "user", "assistant")


@dataclass
class PromptFilePredictor:
    """The file's messages, the last user turn's `{{input}}` replaced by each input."""

    name: str
    strategy: str
    backend: Backend
    messages: list[Message]
    params: dict[str, Any] = field(default_factory=dict)
    setup: Setup = field(default_factory=Setup)

    def request(self, example: Example) -> Request:
        *head, last = self.messages
        turns: list[Message] = [{"role": m["role"], "content": m["content"]} for m in head]
        turns.append(
            {"role": "user", "content": last["content"].replace(PLACEHOLDER, example.input)}
        )
        return Request(turns)


def resolve(task: Task, path: Path) -> Path:
    """A relative path is the task file's folder's (the current folder's when the task was not
    read from a file, as when `tunewise serve` rebuilds a run)."""
    return path if path.is_absolute() else ((task.folder or Path.cwd()) / path).resolve()


def prepare(
    task: Task, path: Path, backend: Backend, name: str, strategy: str
) -> PromptFilePredictor:
    """The predictor for the prompt at `path`; its file and sha256 are recorded as params."""
    where = resolve(task, path)
    try:
        raw = where.read_bytes()
    except OSError as exc:
        raise TunewiseError(
            f"candidate '{name}': prompt_file {where}: cannot read it ({exc.strerror or exc})"
        ) from None
    messages = parse_messages(raw, where)
    params = {"prompt_file": str(where), "prompt_sha256": hashlib.sha256(raw).hexdigest()}
    return PromptFilePredictor(name, strategy, backend, messages, params)


def parse_messages(raw: bytes, where: Path) -> list[Message]:
    """The messages of an exported prompt: {"messages": [...], ...} or a bare list of
    {role, content} turns whose last one is the user's, holding `{{input}}`."""
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TunewiseError(f"{where}: not valid JSON ({exc})") from None
    turns = document.get("messages") if isinstance(document, dict) else document
    if not isinstance(turns, list) or not turns:
        raise TunewiseError(
            f"{where}: expected a non-empty list of messages, or an object with one under "
            "'messages' (tunewise export --format openai-messages writes one)"
        )
    messages: list[Message] = []
    for number, turn in enumerate(turns):
        if (
            not isinstance(turn, dict)
            or turn.get("role") not in ROLES
            or not isinstance(turn.get("content"), str)
        ):
            raise TunewiseError(
                f'{where}: messages.{number}: expected {{"role": {" | ".join(ROLES)}, '
                '"content": TEXT}'
            )
        messages.append({"role": turn["role"], "content": turn["content"]})
    last = messages[-1]
    if last["role"] != "user" or PLACEHOLDER not in last["content"]:
        raise TunewiseError(
            f"{where}: the last message must be the user's and hold {PLACEHOLDER}, where each "
            "input goes"
        )
    return messages
