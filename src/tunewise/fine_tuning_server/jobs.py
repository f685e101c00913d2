"""Fine-tuning jobs as the API creates, lists and cancels them, and the models the server
answers with: the base model, every fine-tuned model and checkpoint it trained."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tunewise.fine_tuning_server.answering import Answerer
from tunewise.fine_tuning_server.files import PURPOSE, FileStorage
from tunewise.fine_tuning_server.store import FINISHED, Job, Store, new_id, now
from tunewise.fine_tuning_server.training import resolve_hyperparameters
from tunewise.fine_tuning_server.worker import Worker
from tunewise.inference.chat_api import ApiError

MIN_EXAMPLES = 10  # the hosted service's minimum of training examples
DEFAULT_SEED = 0  # tunewise's default seed: a job without one is reproducible
_SUFFIX = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class _Supervised(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: dict[str, Any] | None = None


class _Method(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: _Supervised | None = None
    dpo: dict[str, Any] | None = None
    reinforcement: dict[str, Any] | None = None


class JobRequest(BaseModel):
    """The body of POST /v1/fine_tuning/jobs (unknown fields are errors naming the field)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: dict[str, Any] | None = None
    method: _Method | None = None
    suffix: str | None = None
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    integrations: list[dict[str, Any]] | None = None

    def chosen_hyperparameters(self) -> dict[str, Any] | None:
        if self.method is None:
            return self.hyperparameters
        if self.method.type != "supervised":
            raise ApiError(
                400, f"method '{self.method.type}' is not supported; this server trains "
                "'supervised' jobs", "unsupported_method", "method.type",
            )  # fmt: skip
        given = self.method.supervised.hyperparameters if self.method.supervised else None
        return {**(self.hyperparameters or {}), **(given or {})}


def parse_job_request(body: bytes) -> JobRequest:
    try:
        return JobRequest.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ApiError(400, f"{where}: {first['msg']}", "invalid_request", where) from None


def fine_tuned_name(base: str, job: Job) -> str:
    """ft:<base>:<suffix or tunewise>:<the job id's last 8 characters>, as OpenAI names them."""
    return f"ft:{base}:{job.suffix or 'tunewise'}:{job.id[-8:]}"


@dataclass
class Service:
    """Everything the routes use: the records, the files, the worker and the models."""

    base: str  # the base model's id (its tunewise model spec)
    data: Path
    store: Store
    files: FileStorage
    worker: Worker
    answerer: Answerer

    def job(self, job_id: str) -> Job:
        found = self.store.job(job_id)
        if found is None:
            raise ApiError(
                404, f"No such fine-tuning job: {job_id}", "fine_tuning_job_not_found", "job_id"
            )
        return found

    def create(self, request: JobRequest) -> Job:
        hyperparameters = resolve_hyperparameters(request.chosen_hyperparameters())
        self._check(request)
        job = Job(
            id=new_id("ftjob"), created_at=now(), model=request.model,
            training_file=request.training_file, validation_file=request.validation_file,
            hyperparameters=hyperparameters,
            seed=DEFAULT_SEED if request.seed is None else request.seed,
            suffix=request.suffix, status="validating_files", metadata=request.metadata,
        )  # fmt: skip
        self.store.add_job(job)
        self.store.add_event(job.id, f"Validating training file: {job.training_file}")
        if job.validation_file:
            self.store.add_event(job.id, f"Validating validation file: {job.validation_file}")
        self._validate(job)
        self.worker.wake.set()
        return self.job(job.id)

    def _check(self, request: JobRequest) -> None:
        """What makes the request itself wrong: a 400 naming the field."""
        if request.model != self.base:
            raise ApiError(
                400, f"model '{request.model}' is not available for fine-tuning here; this "
                f"server fine-tunes '{self.base}'", "model_not_available", "model",
            )  # fmt: skip
        if request.suffix is not None and not _SUFFIX.fullmatch(request.suffix):
            raise ApiError(
                400, "suffix must be 1 to 64 letters, digits, '-', '_' or '.'",
                "invalid_suffix", "suffix",
            )  # fmt: skip
        if request.integrations:
            raise ApiError(400, "integrations are not supported", "unsupported", "integrations")
        for param in ("training_file", "validation_file"):
            file_id = getattr(request, param)
            if file_id is None:
                continue
            record = self.store.file(file_id)
            if record is None or record["purpose"] != PURPOSE:
                raise ApiError(
                    400, f"{param} '{file_id}' is not an uploaded file of purpose 'fine-tune'",
                    "invalid_file", param,
                )  # fmt: skip

    def _validate(self, job: Job) -> None:
        """The hosted service's file checks: failing them fails the job, as there."""
        examples = self.store.file(job.training_file)["examples"]  # type: ignore[index]
        if examples < MIN_EXAMPLES:
            error = {
                "code": "invalid_training_file",
                "message": f"Training file {job.training_file} has {examples} example(s), but "
                f"must have at least {MIN_EXAMPLES}",
                "param": "training_file",
            }
            self.store.update_job(job.id, status="failed", error=error, finished_at=now())
            self.store.add_event(job.id, error["message"], level="error")
            return
        self.store.update_job(job.id, only_if=["validating_files"], status="queued")
        self.store.add_event(job.id, "Files validated, moving job to queued state")

    def cancel(self, job_id: str) -> Job:
        job = self.job(job_id)
        if job.status in FINISHED:
            raise ApiError(
                400, f"Job {job_id} has already finished ({job.status}) and cannot be cancelled",
                "job_finished", "job_id",
            )  # fmt: skip
        unfinished = ["validating_files", "queued", "running"]
        if self.store.update_job(job_id, only_if=unfinished, status="cancelled",
                                 finished_at=now()):  # fmt: skip
            self.store.add_event(job_id, "Fine-tuning job cancelled")
        return self.job(job_id)

    def uses(self, file_id: str) -> list[str]:
        """Unfinished jobs that still need this file."""
        waiting = self.store.jobs(["validating_files", "queued", "running"])
        return [j.id for j in waiting if file_id in (j.training_file, j.validation_file)]

    # ---- models -----------------------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        cards = [{"id": self.base, "object": "model", "created": 0, "owned_by": "tunewise"}]
        for job in self.store.jobs(["succeeded"], oldest_first=True):
            if job.model != self.base:
                continue  # trained when the server served another model
            cards.append(
                {"id": job.fine_tuned_model, "object": "model",
                 "created": job.finished_at, "owned_by": "tunewise"}
            )  # fmt: skip
        return cards

    def adapter(self, model: str) -> Path | None:
        """The adapter folder of a model id (None: the base model), or a 404."""
        if model == self.base:
            return None
        for job in self.store.jobs(["succeeded"]):
            if job.fine_tuned_model == model and job.model == self.base:
                return Path(self.worker.folders.model(job.id))
        checkpoint = self.store.checkpoint_named(model)
        owner = None if checkpoint is None else self.store.job(checkpoint["job_id"])
        if checkpoint is not None and owner is not None and owner.model == self.base:
            return self.data / checkpoint["folder"]
        raise ApiError(404, f"The model '{model}' does not exist", "model_not_found", "model")
