"""OpenAI's fine-tuning API as tunewise uses it: upload a file, create a job, look at it, read
its events, find a job by its metadata. The official `openai` client speaks it, to OpenAI or to
any server that serves the same API (`tunewise fine-tuning-server`). The key is read from its
environment variable when the client is made, and never stored, written or shown."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from tunewise.models.endpoint import Endpoint

FINISHED = ("succeeded", "failed", "cancelled")
LISTED = 100  # jobs looked through when finding one by its metadata


@dataclass(frozen=True)
class Job:
    """A fine-tuning job as the service reports it."""

    id: str
    status: str  # validating_files | queued | running | succeeded | failed | cancelled
    model: str = ""
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    error: str | None = None  # the service's message, when it failed
    created_at: int | None = None
    finished_at: int | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    suffix: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class ServiceError(Exception):
    """A request the service refused or never answered, in one line for the user."""

    def __init__(self, what: str, status: int | None = None) -> None:
        super().__init__(what)
        self.status = status


class FineTuningService(Protocol):
    """What the job's life needs of a fine-tuning service."""

    base_url: str

    def upload(self, filename: str, content: bytes) -> str: ...

    def create(
        self,
        model: str,
        files: tuple[str, str | None],
        hyperparameters: dict[str, Any],
        seed: int,
        suffix: str,
        metadata: dict[str, str],
    ) -> Job: ...

    def retrieve(self, job_id: str) -> Job: ...

    def matching(self, key: str, value: str) -> list[Job]: ...

    def events(self, job_id: str) -> list[dict[str, Any]]: ...


class OpenAIService:
    """The fine-tuning API through the official `openai` client."""

    def __init__(self, endpoint: Endpoint, http_client: httpx.Client | None = None) -> None:
        import openai

        self.base_url = endpoint.base_url
        self._key_env = endpoint.api_key_env
        key = endpoint.api_key(endpoint.base_url)
        self._client = openai.OpenAI(
            api_key=key or "no-key",
            base_url=endpoint.base_url,
            timeout=endpoint.timeout_s,
            max_retries=endpoint.max_retries,
            http_client=http_client,
        )

    def upload(self, filename: str, content: bytes) -> str:
        return str(
            self._call(
                f"uploading {filename}",
                lambda: (
                    self._client.files.create(
                        file=(filename, content, "application/jsonl"), purpose="fine-tune"
                    ).id
                ),
            )
        )

    def create(
        self,
        model: str,
        files: tuple[str, str | None],
        hyperparameters: dict[str, Any],
        seed: int,
        suffix: str,
        metadata: dict[str, str],
    ) -> Job:
        import openai

        method = {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}}
        created = self._call(
            "creating the fine-tuning job",
            lambda: self._client.fine_tuning.jobs.create(
                model=model,
                training_file=files[0],
                validation_file=files[1] if files[1] is not None else openai.omit,
                method=method,  # type: ignore[arg-type]
                seed=seed,
                suffix=suffix,
                metadata=metadata,
            ),
        )
        return job_from(created)

    def retrieve(self, job_id: str) -> Job:
        found = self._call(
            f"looking at job {job_id}", lambda: self._client.fine_tuning.jobs.retrieve(job_id)
        )
        return job_from(found)

    def matching(self, key: str, value: str) -> list[Job]:
        """The service's jobs whose metadata says `key: value` (a server that ignores the
        filter lists them all: they are filtered here too)."""
        page = self._call(
            "listing fine-tuning jobs",
            lambda: self._client.fine_tuning.jobs.list(limit=LISTED, metadata={key: value}),
        )
        jobs = [job_from(item) for item in page.data]
        return [job for job in jobs if job.metadata.get(key) == value]

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """The job's latest events, oldest first."""
        page = self._call(
            f"reading job {job_id}'s events",
            lambda: self._client.fine_tuning.jobs.list_events(job_id, limit=LISTED),
        )
        events = [_plain(event) for event in page.data]
        return sorted(events, key=lambda e: (e.get("created_at") or 0, str(e.get("id"))))

    def _call(self, what: str, request: Any) -> Any:
        import openai

        try:
            return request()
        except openai.APIStatusError as error:
            message = _service_message(error)
            raise ServiceError(
                self._redact(f"{what}: HTTP {error.status_code}: {message}"), error.status_code
            ) from None
        except openai.APIConnectionError as error:
            cause = type(error.__cause__ or error).__name__
            raise ServiceError(f"{what}: cannot reach {self.base_url} ({cause})") from None

    def _redact(self, text: str) -> str:
        key = os.environ.get(self._key_env, "").strip() if self._key_env else ""
        return " ".join((text.replace(key, "***") if key else text).split())


def job_from(item: Any) -> Job:
    """A Job from the client's object (or a plain dict of the same shape)."""
    data = _plain(item)
    error = data.get("error") or {}
    message = error.get("message") if isinstance(error, dict) else str(error)
    hyperparameters = data.get("hyperparameters") or {}
    supervised = ((data.get("method") or {}).get("supervised") or {}).get("hyperparameters")
    return Job(
        id=str(data["id"]),
        status=str(data.get("status") or "unknown"),
        model=str(data.get("model") or ""),
        fine_tuned_model=data.get("fine_tuned_model"),
        trained_tokens=data.get("trained_tokens"),
        error=" ".join(str(message).split()) if message else None,
        created_at=data.get("created_at"),
        finished_at=data.get("finished_at"),
        hyperparameters=dict(supervised or hyperparameters),
        metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
        suffix=data.get("user_provided_suffix"),
    )


def _plain(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        return item
    dumped: dict[str, Any] = item.model_dump(mode="json", exclude_none=False)
    return dumped


def _service_message(error: Any) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(error.message)
