"""The one worker thread that trains queued jobs in order, one at a time.

A job is `running` in the store from its first step to its end. A server stopped mid-job
leaves it `running` with the trainer's checkpoints in its work folder; the next server's
worker takes it up first and the trainer resumes from the last checkpoint. Cancelling marks
the job `cancelled` at once; the worker stops it at the next step boundary and drops its
checkpoints.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tunewise.errors import TunewiseError
from tunewise.fine_tuning_server.files import FileStorage, conversations
from tunewise.fine_tuning_server.store import FINISHED, Job, Store, now
from tunewise.fine_tuning_server.training import (
    Trainer,
    TrainingJob,
    TrainingOutcome,
    hold_out,
)
from tunewise.inference.chat_api import ApiError

log = logging.getLogger(__name__)
KEEP_CHECKPOINTS = 3  # as the hosted service keeps the last few


class JobCancelled(Exception):
    """The job was cancelled; training stops at this step boundary."""


class ServerStopping(Exception):
    """The server is shutting down; the job stays running, to resume after a restart."""


@dataclass(frozen=True)
class Folders:
    """Where a job's things live under the data folder."""

    data: Path

    def model(self, job_id: str) -> Path:
        return self.data / "models" / job_id

    def work(self, job_id: str) -> Path:
        return self.data / "work" / job_id

    def checkpoint(self, job_id: str, step: int) -> Path:
        return self.data / "checkpoints" / job_id / f"step-{step}"


def checkpoint_model(fine_tuned_model: str, step: int) -> str:
    return f"{fine_tuned_model}:ckpt-step-{step}"


class Worker:
    """Trains the store's queued (and interrupted) jobs, oldest first."""

    def __init__(
        self, store: Store, files: FileStorage, trainer: Trainer, folders: Folders,
        base: str, names: Callable[[Job], str],
    ) -> None:  # fmt: skip
        self.store, self.files, self.trainer, self.folders = store, files, trainer, folders
        self.base = base  # the model this server fine-tunes
        self.names = names  # job -> its fine-tuned model's name
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.current: str | None = None
        self._claim: IO[str] | None = None

    def claim(self) -> None:
        """Hold the data folder's lock: two servers on one folder would train the same job."""
        if self._claim is not None:
            return
        self.folders.data.mkdir(parents=True, exist_ok=True)
        handle = (self.folders.data / "server.lock").open("w")
        try:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - no flock on this platform
            pass
        except OSError:
            handle.close()
            raise TunewiseError(
                f"another fine-tuning server is using {self.folders.data}; stop it, or give "
                "this one its own --data-dir"
            ) from None
        self._claim = handle

    def start(self) -> None:
        self.claim()
        for job in self.store.jobs(["validating_files"]):  # stopped between insert and queue
            self.store.update_job(job.id, status="queued")
        self.thread = threading.Thread(target=self._loop, name="fine-tuning-worker", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop at the running job's next step boundary; the job resumes after a restart."""
        self.stopping.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout)
        if self._claim is not None:
            self._claim.close()  # releases the lock
            self._claim = None

    def _loop(self) -> None:
        while not self.stopping.is_set():
            waiting = self.store.jobs(["running", "queued"], oldest_first=True)
            running = [job for job in waiting if job.status == "running"]
            job = (running or waiting or [None])[0]
            if job is None:
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            self.current = job.id
            try:
                self._run(job)
            finally:
                self.current = None

    def _run(self, job: Job) -> None:
        resumed = job.status == "running"
        if not self.store.update_job(job.id, only_if=["queued", "running"], status="running"):
            return  # cancelled meanwhile
        if job.model != self.base:  # the server was restarted with another --model
            message = f"this server now fine-tunes '{self.base}', not the job's '{job.model}'"
            self._fail(job, "model_not_available", message, "model")
            return
        self.store.add_event(
            job.id,
            "Resuming the fine-tuning job after a server restart"
            if resumed
            else "Fine-tuning job started",
        )
        try:
            outcome = self.trainer.train(self._training_job(job), _Hooks(self, job))
        except ServerStopping:
            return
        except JobCancelled:
            shutil.rmtree(self.folders.work(job.id), ignore_errors=True)
            return
        except (ApiError, TunewiseError) as exc:
            self._fail(job, "invalid_training_file", str(exc), "training_file")
            return
        except Exception as exc:  # a bug or the device: the job fails, the server lives on
            log.exception("fine-tuning job %s failed", job.id)
            self._fail(job, "training_error", f"{type(exc).__name__}: {exc}", None)
            return
        self._succeed(job, outcome)

    def _training_job(self, job: Job) -> TrainingJob:
        train = list(conversations(self.files.path(job.training_file)))
        if job.validation_file:
            validation = list(conversations(self.files.path(job.validation_file)))
        else:
            train, validation = hold_out(train, job.seed)
        return TrainingJob(
            job.id, train, validation, job.hyperparameters, job.seed,
            self.folders.model(job.id), self.folders.work(job.id),
        )  # fmt: skip

    def _fail(self, job: Job, code: str, message: str, param: str | None) -> None:
        error = {"code": code, "message": message, "param": param}
        if self.store.update_job(
            job.id, only_if=["running"], status="failed", error=error, finished_at=now()
        ):
            self.store.add_event(job.id, f"Fine-tuning job failed: {message}", level="error")

    def _succeed(self, job: Job, outcome: TrainingOutcome) -> None:
        name = self.names(job)
        last = outcome.loss_curve[-1] if outcome.loss_curve else {}
        metrics = {"step": outcome.steps, **_checkpoint_metrics(last)}
        folder = self.folders.model(job.id)
        self.store.add_checkpoint(
            job.id, outcome.steps, metrics, checkpoint_model(name, outcome.steps),
            str(folder.relative_to(self.folders.data)),
        )  # fmt: skip
        keep_last_checkpoints(self.store, self.folders, job.id)
        results = self.files.add_results(job.id, results_csv(outcome.loss_curve))
        done = self.store.update_job(
            job.id, only_if=["running"], status="succeeded", fine_tuned_model=name,
            trained_tokens=outcome.trained_tokens, result_files=[results], finished_at=now(),
        )  # fmt: skip
        if done:
            if outcome.resumed_from_step:
                self.store.add_event(
                    job.id, f"Resumed from the checkpoint at step {outcome.resumed_from_step}",
                    data={"resumed_from_step": outcome.resumed_from_step},
                )  # fmt: skip
            if outcome.left_out:
                self.store.add_event(
                    job.id, f"{outcome.left_out} example(s) longer than the trainer's maximum "
                    "length were left out", level="warn",
                )  # fmt: skip
            self.store.add_event(job.id, f"New fine-tuned model created: {name}")
            self.store.add_event(job.id, "The job has successfully completed")


def _checkpoint_metrics(point: dict[str, Any]) -> dict[str, float]:
    found = {}
    if "train_loss" in point:
        found["train_loss"] = point["train_loss"]
    if "validation_loss" in point:
        found["valid_loss"] = point["validation_loss"]
    return found


def results_csv(curve: list[dict[str, Any]]) -> str:
    """The job's results file: the loss curve, one row per validation check."""
    rows = ["step,train_loss,valid_loss"]
    rows += [f"{p['step']},{p.get('train_loss', '')},{p.get('validation_loss', '')}" for p in curve]
    return "\n".join(rows) + "\n"


class _Hooks:
    """The worker's ears in one job's training."""

    def __init__(self, worker: Worker, job: Job) -> None:
        self.worker, self.job = worker, job
        told = [e["data"]["step"] for e in worker.store.events(job.id) if e["type"] == "metrics"]
        self.last_metrics_step = max(told, default=0)  # resumed: points told before the stop

    def progress(self, step: int, total: int) -> None:
        if self.worker.store.status(self.job.id) in FINISHED:
            self.worker.store.add_event(self.job.id, f"Training stopped at step {step}/{total}")
            raise JobCancelled
        if self.worker.stopping.is_set():
            self.worker.store.add_event(
                self.job.id, f"Server stopping at step {step}/{total}; the job resumes from its "
                "last checkpoint when the server restarts",
            )  # fmt: skip
            raise ServerStopping

    def metrics(self, point: dict[str, float], total: int) -> None:
        step = int(point["step"])
        if step <= self.last_metrics_step:
            return
        self.last_metrics_step = step
        message = f"Step {step}/{total}: training loss={point['train_loss']:.4f}"
        if "validation_loss" in point:
            message += f", validation loss={point['validation_loss']:.4f}"
        data = {"step": step, "total_steps": total, **_checkpoint_metrics(point)}
        self.worker.store.add_event(self.job.id, message, kind="metrics", data=data)

    def checkpoint(self, step: int, adapter: Path, metrics: dict[str, float]) -> None:
        """Keep a copy of the trainer's checkpoint, servable as the job's checkpoint model; the
        last few are kept."""
        folders, store = self.worker.folders, self.worker.store
        target = folders.checkpoint(self.job.id, step)
        staging = target.with_name(target.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(adapter, staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        name = checkpoint_model(self.worker.names(self.job), step)
        relative = str(target.relative_to(folders.data))
        store.add_checkpoint(self.job.id, step, metrics, name, relative)
        store.add_event(self.job.id, f"Checkpoint created at step {step}", data={"step": step})
        keep_last_checkpoints(store, folders, self.job.id)


def keep_last_checkpoints(store: Store, folders: Folders, job_id: str) -> None:
    """Drop all but the job's last few checkpoints (never the fine-tuned model's folder)."""
    for old in store.checkpoints(job_id)[KEEP_CHECKPOINTS:]:
        store.drop_checkpoint(old["id"])
        folder = folders.data / old["folder"]
        if folder.parent.parent == folders.data / "checkpoints":
            shutil.rmtree(folder, ignore_errors=True)
