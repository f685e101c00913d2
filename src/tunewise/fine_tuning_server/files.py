"""Uploaded files: checked line by line as the hosted service checks fine-tuning data, stored
under unguessable ids in the server's data folder. A request names a file only by its id; the
path on disk is always built here from an id this module made."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from tunewise.fine_tuning_server.store import Store, new_id, now
from tunewise.inference.chat_api import ApiError
from tunewise.models.backend import Message

PURPOSE = "fine-tune"
RESULTS_PURPOSE = "fine-tune-results"
ROLES = ("system", "user", "assistant")
MESSAGE_KEYS = {"role", "content", "name", "weight"}  # name and weight are accepted, unused
MAX_FILENAME = 255
_ID = re.compile(r"file-[0-9a-f]{24}")
_CHUNK = 1 << 20

Conversation = list[Message]


def invalid_line(number: int, problem: str) -> ApiError:
    return ApiError(
        400, f"Invalid file format: line {number}: {problem}", "invalid_file_format", "file"
    )


def check_line(number: int, raw: bytes) -> Conversation:
    """One training example: a JSON object whose `messages` are {role, content} turns ending
    with the assistant's answer; the error names the line and what is wrong."""
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise invalid_line(number, "the line is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise invalid_line(number, f"not valid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise invalid_line(number, "each line must be a JSON object with a 'messages' list")
    if unknown := sorted(set(row) - {"messages"}):
        raise invalid_line(number, f"unsupported key(s) {', '.join(unknown)}; only 'messages'")
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_line(number, "'messages' must be a non-empty list of {role, content}")
    turns = [_check_message(number, index, m) for index, m in enumerate(messages, start=1)]
    if turns[-1]["role"] != "assistant":
        raise invalid_line(number, "the last message must be the assistant's answer")
    if len(turns) < 2:
        raise invalid_line(number, "the assistant's answer needs a message before it")
    if not turns[-1]["content"].strip():
        raise invalid_line(number, "the assistant's answer is empty")
    return turns


def _check_message(number: int, index: int, message: Any) -> Message:
    where = f"message {index}"
    if not isinstance(message, dict):
        raise invalid_line(number, f"{where} must be an object with 'role' and 'content'")
    if unknown := sorted(set(message) - MESSAGE_KEYS):
        raise invalid_line(number, f"{where} has unsupported key(s) {', '.join(unknown)}")
    role = message.get("role")
    if role not in ROLES:
        raise invalid_line(number, f"{where} has role {role!r}; use one of {', '.join(ROLES)}")
    content = message.get("content")
    if not isinstance(content, str):
        raise invalid_line(number, f"{where} ('{role}') needs 'content' as a string")
    return {"role": role, "content": content}


def conversations(path: Path) -> Iterator[Conversation]:
    """The examples of a stored file (already checked when it was uploaded)."""
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if raw.strip():
                yield check_line(number, raw)


class FileStorage:
    """Files under <data>/files, their records in the store."""

    def __init__(self, folder: Path, store: Store, max_bytes: int) -> None:
        self.folder = folder
        self.store = store
        self.max_bytes = max_bytes
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, file_id: str) -> Path:
        if not _ID.fullmatch(file_id):  # never a path from a request
            raise self.missing(file_id)
        return self.folder / f"{file_id}.jsonl"

    def missing(self, file_id: str) -> ApiError:
        return ApiError(404, f"No such File object: {file_id}", "file_not_found", "file_id")

    def record(self, file_id: str) -> dict[str, Any]:
        found = self.store.file(file_id)
        if found is None:
            raise self.missing(file_id)
        return found

    def upload(self, source: BinaryIO, filename: str, purpose: str) -> dict[str, Any]:
        """Copy the upload in within the size limit, check every line, then keep it."""
        if purpose != PURPOSE:
            raise ApiError(
                400, f"purpose {purpose!r} is not supported; this server accepts 'fine-tune'",
                "invalid_purpose", "purpose",
            )  # fmt: skip
        file_id = new_id("file")
        staging = self.folder / f".{file_id}.tmp"
        try:
            size = self._copy(source, staging)
            examples = self._check(staging)
            os.replace(staging, self.path(file_id))
        finally:
            staging.unlink(missing_ok=True)
        return self._add(file_id, filename, purpose, size, examples)

    def _copy(self, source: BinaryIO, staging: Path) -> int:
        size = 0
        with staging.open("wb") as out:
            while chunk := source.read(_CHUNK):
                size += len(chunk)
                if size > self.max_bytes:
                    raise ApiError(
                        413, f"the file is larger than {self.max_bytes:,} bytes",
                        "file_too_large", "file",
                    )  # fmt: skip
                out.write(chunk)
        return size

    def _check(self, staging: Path) -> int:
        examples, blank = 0, None
        with staging.open("rb") as lines:
            for number, raw in enumerate(lines, start=1):
                if not raw.strip():
                    blank = blank or number
                    continue
                if blank is not None:
                    raise invalid_line(blank, "the line is empty")
                check_line(number, raw)
                examples += 1
        if examples == 0:
            raise ApiError(400, "Invalid file format: the file has no examples",
                           "invalid_file_format", "file")  # fmt: skip
        return examples

    def _add(
        self, file_id: str, filename: str, purpose: str, size: int, examples: int
    ) -> dict[str, Any]:
        record = {
            "id": file_id,
            "created_at": now(),
            "filename": filename[:MAX_FILENAME] or "upload.jsonl",
            "purpose": purpose,
            "bytes": size,
            "examples": examples,
        }
        self.store.add_file(record)
        return file_object(record)

    def add_results(self, job_id: str, text: str) -> str:
        """A job's results CSV, kept as a file of purpose fine-tune-results; its id."""
        file_id = new_id("file")
        staging = self.folder / f".{file_id}.tmp"
        staging.write_text(text, encoding="utf-8")
        os.replace(staging, self.path(file_id))
        data = text.encode("utf-8")
        self._add(file_id, f"{job_id}-results.csv", RESULTS_PURPOSE, len(data), 0)
        return file_id

    def delete(self, file_id: str) -> dict[str, Any]:
        self.record(file_id)
        self.store.drop_file(file_id)
        self.path(file_id).unlink(missing_ok=True)
        return {"id": file_id, "object": "file", "deleted": True}


def file_object(record: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI `file` object of a stored file."""
    return {
        "id": record["id"],
        "object": "file",
        "bytes": record["bytes"],
        "created_at": record["created_at"],
        "filename": record["filename"],
        "purpose": record["purpose"],
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }
