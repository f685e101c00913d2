"""A fine-tuning job's life, with real money at stake: keyed by content, found again, never
started twice.

The key is sha256 of what decides the fine-tuned model: the training and validation files
(which hold the exact prompts), the hyperparameters, the seed, the suffix, the base model and
the service's URL; never the API key. Under $TUNEWISE_HOME/fine-tuning-jobs/KEY/ the files sent
and `job.json` are kept; the job's id is written (atomically) as soon as the service gives it,
before any polling. A re-run then reuses a finished model without a request, or re-attaches to a
running job; and before creating a job the service's own list is searched for one carrying the
same key in its metadata (a run killed between create and write). Ctrl-C leaves the job running
and says how to cancel it; a failed or cancelled job is one line, and the candidate is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tunewise.core.keys import cache_key
from tunewise.core.progress import Progress, StatusProgress, StatusUpdate
from tunewise.errors import CandidateSkipped
from tunewise.strategies.hosted_fine_tuning.service_api import FineTuningService, Job, ServiceError

JOB_FORMAT = 1  # bump when the same inputs would make another job
JOBS_FOLDER = "fine-tuning-jobs"
KEY_FIELD = "tunewise_key"  # the job's metadata entry that finds it again
EVENTS_KEPT = 50  # message events kept in the record (metrics are kept whole)


class JobLeftRunning(KeyboardInterrupt):
    """Ctrl-C while a job runs: the job keeps running; the message says how to cancel it."""


@dataclass(frozen=True)
class JobRequest:
    """Everything that decides the fine-tuned model."""

    base_url: str
    model: str
    train: str  # the training file: chat JSONL
    validation: str
    hyperparameters: dict[str, Any]
    seed: int
    suffix: str | None  # the user's; else one derived from the key
    api_key_env: str | None = None  # the variable's NAME, for the cancel command; not keyed

    def key(self) -> str:
        return cache_key(
            format=JOB_FORMAT,
            base_url=self.base_url.rstrip("/"),
            model=self.model,
            train=hashlib.sha256(self.train.encode()).hexdigest(),
            validation=hashlib.sha256(self.validation.encode()).hexdigest(),
            hyperparameters=self.hyperparameters,
            seed=self.seed,
            suffix=self.suffix,
        )

    def job_suffix(self) -> str:
        return self.suffix or f"tw-{self.key()[:12]}"


@dataclass(frozen=True)
class FinishedJob:
    """A succeeded job's record (as job.json holds it), and whether an earlier run made it."""

    record: dict[str, Any]
    cached: bool
    folder: Path


class JobStore:
    """One job's folder: the files sent and job.json, each written by a rename."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "job.json"

    def read(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        record: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        return record

    def write(self, record: dict[str, Any]) -> None:
        self.put("job.json", json.dumps(record, indent=1, ensure_ascii=False) + "\n")

    def put(self, name: str, text: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=f".{name}.")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, self.folder / name)


def fine_tune(
    request: JobRequest,
    service: FineTuningService,
    home: Path,
    *,
    name: str,
    progress: Progress | None = None,
    poll_seconds: float = 15.0,
    sleep: Callable[[float], None] = time.sleep,
) -> FinishedJob:
    """The succeeded job for `request`: the one an earlier run finished, or the running one
    re-attached, or a new one; raises CandidateSkipped when the job failed or the service
    rejected it, JobLeftRunning on Ctrl-C while it runs."""
    store = JobStore(home / JOBS_FOLDER / request.key())
    record = store.read() or {}
    if record.get("status") == "succeeded" and record.get("fine_tuned_model"):
        return FinishedJob(record, True, store.folder)
    if record.get("status") in ("failed", "cancelled"):
        raise CandidateSkipped(f"{failure(record)}; delete {store.folder} to start a new job")
    try:
        job = _attached(service, store, record, request) or _started(service, store, request)
        job = _polled(service, store, job, _updater(progress, name), poll_seconds, sleep)
    except ServiceError as error:
        running = (store.read() or {}).get("job_id")
        kept = f"; job {running} is kept, and a re-run re-attaches to it" if running else ""
        raise CandidateSkipped(
            f"fine-tuning on {_shown(service.base_url)}: {error}{kept}"
        ) from None
    record = store.read() or {}
    if job.status != "succeeded" or not job.fine_tuned_model:
        raise CandidateSkipped(failure(record))
    return FinishedJob(record, False, store.folder)


def failure(record: dict[str, Any]) -> str:
    """One line: the job, how it ended, and the service's message."""
    message = record.get("error") or "the service gave no message"
    return f"fine-tuning job {record.get('job_id')} {record.get('status')}: {message}"


def _attached(
    service: FineTuningService, store: JobStore, record: dict[str, Any], request: JobRequest
) -> Job | None:
    """The job an earlier run started: by the id it wrote, else by the key in the metadata of
    the service's jobs (a run killed between create and write); failed ones are left be."""
    if record.get("job_id"):
        return service.retrieve(str(record["job_id"]))
    found = [
        job
        for job in service.matching(KEY_FIELD, request.key()[:64])
        if job.status not in ("failed", "cancelled")
    ]
    if not found:
        return None
    job = max(found, key=lambda j: j.created_at or 0)
    store.write(_record(request, job, record.get("files", {})))
    return job


def _started(service: FineTuningService, store: JobStore, request: JobRequest) -> Job:
    """Upload the files and create the job; its id is on disk before this returns."""
    splits = [("train", request.train), ("validation", request.validation)]
    splits = [(split, text) for split, text in splits if text]  # too few for a validation slice
    for split, text in splits:
        store.put(f"{split}.jsonl", text)
    files = {split: service.upload(f"{split}.jsonl", text.encode()) for split, text in splits}
    store.write({**_record(request, None, files), "status": "uploaded"})
    job = service.create(
        request.model,
        (files["train"], files.get("validation")),
        request.hyperparameters,
        request.seed,
        request.job_suffix(),
        {KEY_FIELD: request.key()[:64]},
    )
    store.write(_record(request, job, files))
    return job


def _polled(
    service: FineTuningService,
    store: JobStore,
    job: Job,
    update: StatusUpdate,
    poll_seconds: float,
    sleep: Callable[[float], None],
) -> Job:
    """Look at the job until it ends, keeping its events and metrics in job.json."""
    record = store.read() or {}
    try:
        while True:
            record = _with_events(record, job, service.events(job.id))
            store.write(record)
            done, total = _steps(record)
            update(_status(job, record), done, total)
            if job.finished:
                return job
            sleep(poll_seconds)
            job = service.retrieve(job.id)
    except KeyboardInterrupt:
        raise JobLeftRunning(left_running(job, service.base_url, record)) from None


def left_running(job: Job, base_url: str, record: dict[str, Any]) -> str:
    """What Ctrl-C prints: the job keeps running, a re-run re-attaches, and how to cancel it."""
    variable = record.get("api_key_env")
    auth = f' -H "Authorization: Bearer ${variable}"' if variable else ""
    return (
        f"interrupted; fine-tuning job {job.id} keeps running on {_shown(base_url)} and a re-run "
        f"re-attaches to it. To cancel it: curl -X POST {_shown(base_url)}/fine_tuning/jobs/"
        f"{job.id}/cancel{auth}"
    )


def _record(request: JobRequest, job: Job | None, files: dict[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "base_url": _shown(request.base_url),
        "api_key_env": request.api_key_env,
        "model": request.model,
        "hyperparameters": request.hyperparameters,
        "seed": request.seed,
        "suffix": request.job_suffix(),
        "files": files,
        "events": [],
        "metrics": [],
    }
    if job is not None:
        record |= {
            "job_id": job.id,
            "status": job.status,
            "fine_tuned_model": job.fine_tuned_model,
            "trained_tokens": job.trained_tokens,
            "error": job.error,
            "created_at": job.created_at,
            "finished_at": job.finished_at,
            "hyperparameters_used": job.hyperparameters,
        }
    return record


def _with_events(record: dict[str, Any], job: Job, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The record with the job's state, its new message events and its metrics by step."""
    seen = {e.get("id") for e in record.get("events", [])}
    messages = list(record.get("events", []))
    metrics = {m["step"]: m for m in record.get("metrics", []) if "step" in m}
    for event in events:
        data = event.get("data") or {}
        if event.get("type") == "metrics" and isinstance(data.get("step"), int):
            metrics[data["step"]] = data
        elif event.get("id") not in seen:
            keep = ("id", "created_at", "level", "message")
            messages.append({k: event.get(k) for k in keep})
    state = {
        "job_id": job.id,
        "status": job.status,
        "fine_tuned_model": job.fine_tuned_model,
        "trained_tokens": job.trained_tokens,
        "error": job.error,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "hyperparameters_used": job.hyperparameters or record.get("hyperparameters_used", {}),
    }
    ordered = [metrics[step] for step in sorted(metrics)]
    return {**record, **state, "events": messages[-EVENTS_KEPT:], "metrics": ordered}


def _steps(record: dict[str, Any]) -> tuple[int, int | None]:
    last = record["metrics"][-1] if record.get("metrics") else {}
    total = last.get("total_steps")
    return int(last.get("step", 0)), total if isinstance(total, int) else None


def _status(job: Job, record: dict[str, Any]) -> str:
    done, total = _steps(record)
    words = job.status
    if done:
        words += f", step {done}" + (f"/{total}" if total else "")
    if job.trained_tokens is not None:
        words += f", {job.trained_tokens:,} trained tokens"
    return words


def _updater(progress: Progress | None, name: str) -> StatusUpdate:
    """The job's bar: with its status where the progress can show one."""
    if isinstance(progress, StatusProgress):
        return progress.status_stage(f"{name} fine-tune")
    advance = progress.stage(f"{name} fine-tune", 1) if progress else None

    def update(status: str, done: int, total: int | None) -> None:
        if advance is not None and status.split(",")[0] in ("succeeded", "failed", "cancelled"):
            advance(1)

    return update


def _shown(url: str) -> str:
    """The URL without any user:password in it (a URL may carry credentials)."""
    try:
        return str(httpx.URL(url).copy_with(userinfo=b"")).rstrip("/")
    except (httpx.InvalidURL, TypeError):
        return url.rstrip("/")
