"""`tunewise fine-tuning-server` driven by the official openai client on loopback, with a fast
scripted trainer and answerer behind the server's Protocols (no model is loaded)."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest

from tunewise.errors import TunewiseError
from tunewise.fine_tuning_server.answering import ChatAnswer
from tunewise.fine_tuning_server.jobs import Service
from tunewise.fine_tuning_server.server import (
    ServerSettings,
    build_service,
    check_exposure,
    serve_in_thread,
)
from tunewise.fine_tuning_server.training import TrainingHooks, TrainingJob, TrainingOutcome
from tunewise.inference.chat_api import ChatRequest, choice_logprobs

BASE = "tiny-base"
KEY = "sk-test-9c1e0f"


class ScriptedTrainer:
    """Trains in `steps_per_epoch` x epochs steps of `seconds` each, writing a checkpoint every
    `every` steps into job.work and resuming from the last one, as the real trainer does."""

    def __init__(self, seconds: float = 0.0, every: int = 2) -> None:
        self.seconds, self.every = seconds, every
        self.steps_run = 0  # steps actually trained by this trainer, over all jobs
        self.jobs: list[TrainingJob] = []

    def train(self, job: TrainingJob, hooks: TrainingHooks) -> TrainingOutcome:
        self.jobs.append(job)
        per_epoch = -(-len(job.train) // job.hyperparameters["batch_size"])
        total = per_epoch * job.hyperparameters["n_epochs"]
        done = sorted(job.work.glob("checkpoint-*"), key=lambda p: int(p.name[11:]))
        step = int(done[-1].name[11:]) if done else 0
        resumed = step
        hooks.progress(step, total)
        while step < total:
            time.sleep(self.seconds)
            step += 1
            self.steps_run += 1
            hooks.progress(step, total)
            if step % self.every == 0 and step < total:
                self._checkpoint(job.work, step, hooks, total)
        job.out.mkdir(parents=True)
        (job.out / "adapter_model.safetensors").write_text("weights")
        curve = [{"step": total, "train_loss": 0.5, "validation_loss": 0.6}]
        hooks.metrics(curve[0], total)
        return TrainingOutcome(total * 10, total, resumed, curve)

    def _checkpoint(self, work: Path, step: int, hooks: TrainingHooks, total: int) -> None:
        folder = work / f"checkpoint-{step}" / "adapter"
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_text(f"step {step}")
        point = {"step": step, "train_loss": 1.0 / step, "validation_loss": 1.1 / step}
        hooks.metrics(point, total)
        hooks.checkpoint(step, folder, {"step": step, "train_loss": point["train_loss"]})


class ScriptedAnswerer:
    """Says which model and adapter answered; logprobs as a whole-choice list."""

    def answer(self, name: str, adapter: Path | None, request: ChatRequest) -> ChatAnswer:
        weights = "base" if adapter is None else (adapter / "adapter_model.safetensors").read_text()
        text = f"{name} ({weights})"
        logprobs = choice_logprobs(text, {text: 0.9}, request.top_logprobs)
        return ChatAnswer(text, "stop", logprobs if request.logprobs else None, 7, 3)


def example(n: int) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "Answer with a label."},
            {"role": "user", "content": f"input {n}"},
            {"role": "assistant", "content": "positive" if n % 2 else "negative"},
        ]
    }


def jsonl(rows: list[Any]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


@contextmanager
def server(
    data: Path, trainer: ScriptedTrainer, api_key: str | None = KEY, **limits: Any
) -> Iterator[tuple[openai.OpenAI, Service]]:
    service = build_service(BASE, data, trainer, ScriptedAnswerer(), **limits)
    settings = ServerSettings(api_key=api_key, **limits)
    with serve_in_thread(service, settings) as url:
        yield openai.OpenAI(base_url=url, api_key=api_key or "none", max_retries=0), service


def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return found


def finished(client: openai.OpenAI, job_id: str) -> Any:
    def done() -> Any:
        job = client.fine_tuning.jobs.retrieve(job_id)
        return job if job.status in ("succeeded", "failed", "cancelled") else None

    return wait_for(done)


def upload(client: openai.OpenAI, rows: list[Any], name: str = "train.jsonl") -> str:
    return client.files.create(file=(name, io.BytesIO(jsonl(rows))), purpose="fine-tune").id


def test_a_job_from_upload_to_fine_tuned_answers(tmp_path: Path) -> None:
    trainer = ScriptedTrainer()
    with server(tmp_path, trainer) as (client, _):
        train = upload(client, [example(n) for n in range(12)])
        valid = upload(client, [example(n) for n in range(100, 104)], "valid.jsonl")
        assert client.files.retrieve(train).filename == "train.jsonl"
        assert {f.id for f in client.files.list()} == {train, valid}
        assert client.files.content(train).content == jsonl([example(n) for n in range(12)])

        job = client.fine_tuning.jobs.create(
            model=BASE, training_file=train, validation_file=valid, suffix="sentiment",
            metadata={"run": "b"},
            hyperparameters={"n_epochs": 2, "batch_size": 3, "learning_rate_multiplier": "auto"},
        )  # fmt: skip
        assert job.status in ("queued", "running")
        assert job.hyperparameters.n_epochs == 2 and job.hyperparameters.batch_size == 3
        assert job.hyperparameters.learning_rate_multiplier == 1.0
        done = finished(client, job.id)
        assert done.status == "succeeded", done.error
        assert done.fine_tuned_model == f"ft:{BASE}:sentiment:{job.id[-8:]}"
        assert done.trained_tokens == 80 and done.finished_at is not None
        [results] = done.result_files
        assert client.files.content(results).text.startswith("step,train_loss,valid_loss\n8,")
        assert [len(trainer.jobs[0].train), len(trainer.jobs[0].validation)] == [12, 4]

        messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
        assert messages[-1] == f"Validating training file: {train}"
        assert "Fine-tuning job started" in messages
        assert "Step 2/8: training loss=0.5000, validation loss=0.5500" in messages
        assert messages[:2] == [
            "The job has successfully completed",
            f"New fine-tuned model created: {done.fine_tuned_model}",
        ]
        checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
        assert [c.step_number for c in checkpoints] == [8, 6, 4]  # the last three
        assert checkpoints[0].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-8"
        assert [j.id for j in client.fine_tuning.jobs.list()] == [job.id]
        assert client.fine_tuning.jobs.list(metadata={"run": "a"}).data == []
        assert [j.id for j in client.fine_tuning.jobs.list(metadata={"run": "b"})] == [job.id]

        assert [m.id for m in client.models.list()] == [BASE, done.fine_tuned_model]
        reply = client.chat.completions.create(
            model=done.fine_tuned_model, messages=[{"role": "user", "content": "input 1"}],
            logprobs=True, top_logprobs=2,
        )  # fmt: skip
        assert reply.choices[0].message.content == f"{done.fine_tuned_model} (weights)"
        assert reply.choices[0].logprobs is not None
        assert reply.usage is not None and reply.usage.total_tokens == 10
        step4 = client.chat.completions.create(
            model=f"{done.fine_tuned_model}:ckpt-step-4",
            messages=[{"role": "user", "content": "input 1"}],
        )
        assert step4.choices[0].message.content.endswith("(step 4)")
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model="ft:other", messages=[{"role": "user", "content": "x"}]
            )
        assert client.files.delete(valid).deleted
        assert [f.id for f in client.files.list(purpose="fine-tune")] == [train]


def test_a_wrong_or_missing_key_gets_401(tmp_path: Path) -> None:
    with server(tmp_path, ScriptedTrainer()) as (client, _):
        wrong = openai.OpenAI(base_url=str(client.base_url), api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as raised:
            wrong.files.list()
        assert raised.value.status_code == 401
        assert raised.value.body["code"] == "invalid_api_key"  # type: ignore[index]
        with pytest.raises(openai.AuthenticationError):
            wrong.fine_tuning.jobs.list()
        assert list(client.files.list()) == []


def test_a_non_loopback_host_needs_a_key() -> None:
    with pytest.raises(TunewiseError, match="--api-key-env"):
        check_exposure("0.0.0.0", None)
    check_exposure("0.0.0.0", KEY)
    check_exposure("::1", None)
    check_exposure("localhost", None)


@pytest.mark.parametrize(
    ("lines", "line", "words"),
    [
        ([json.dumps(example(1)), "{not json"], 2, "not valid JSON"),
        ([json.dumps(example(1)), json.dumps({"prompt": "a"})], 2, "unsupported key(s) prompt"),
        (['{"messages": []}'], 1, "non-empty list"),
        ([json.dumps({"messages": [{"role": "user", "content": "hi"}]})], 1, "assistant's answer"),
        ([json.dumps({"messages": [{"role": "bot", "content": "x"}]})], 1, "role 'bot'"),
        ([json.dumps({"messages": [{"role": "user", "content": 3}]})], 1, "content"),
        ([json.dumps(example(1)), "", json.dumps(example(2))], 2, "empty"),
    ],
)
def test_a_malformed_upload_is_a_400_naming_the_line(
    tmp_path: Path, lines: list[str], line: int, words: str
) -> None:
    with server(tmp_path, ScriptedTrainer()) as (client, _):
        body = ("\n".join(lines) + "\n").encode()
        with pytest.raises(openai.BadRequestError) as raised:
            client.files.create(file=("bad.jsonl", io.BytesIO(body)), purpose="fine-tune")
        message = raised.value.body["message"]  # type: ignore[index]
        assert f"line {line}:" in message and words in message
        assert list(client.files.list()) == []
        assert not [p for p in (tmp_path / "files").iterdir()]


def test_an_upload_over_the_limit_is_a_413(tmp_path: Path) -> None:
    with server(tmp_path, ScriptedTrainer(), max_upload_bytes=2000) as (client, _):
        with pytest.raises(openai.APIStatusError) as raised:
            upload(client, [example(n) for n in range(40)])
        assert raised.value.status_code == 413
        upload(client, [example(n) for n in range(5)])  # under the limit


def test_bad_requests_name_the_field(tmp_path: Path) -> None:
    with server(tmp_path, ScriptedTrainer()) as (client, _):
        train = upload(client, [example(n) for n in range(12)])
        cases = [
            ({"model": "gpt-4o-mini"}, "model"),
            ({"hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs"),
            ({"hyperparameters": {"warmup": 1}}, "hyperparameters.warmup"),
            ({"validation_file": "file-0123"}, "validation_file"),
            ({"suffix": "a:b"}, "suffix"),
        ]
        for change, param in cases:
            arguments = {"model": BASE, "training_file": train, **change}
            with pytest.raises(openai.BadRequestError) as raised:
                client.fine_tuning.jobs.create(**arguments)
            assert raised.value.body["param"] == param, change  # type: ignore[index]
        with pytest.raises(openai.BadRequestError):
            client.fine_tuning.jobs.create(
                model=BASE, training_file=train, method={"type": "dpo", "dpo": {}}
            )
        assert list(client.fine_tuning.jobs.list()) == []


def test_too_few_examples_fail_the_job_as_the_hosted_service_does(tmp_path: Path) -> None:
    with server(tmp_path, ScriptedTrainer()) as (client, _):
        train = upload(client, [example(n) for n in range(3)])
        job = client.fine_tuning.jobs.create(model=BASE, training_file=train)
        assert job.status == "failed" and job.error is not None
        assert job.error.code == "invalid_training_file" and job.error.param == "training_file"
        assert "has 3 example(s)" in job.error.message


def test_cancel_stops_a_running_job_at_a_step_boundary(tmp_path: Path) -> None:
    trainer = ScriptedTrainer(seconds=0.05)
    with server(tmp_path, trainer) as (client, service):
        train = upload(client, [example(n) for n in range(40)])
        running = client.fine_tuning.jobs.create(
            model=BASE, training_file=train, hyperparameters={"batch_size": 1, "n_epochs": 5}
        )
        queued = client.fine_tuning.jobs.create(model=BASE, training_file=train)
        wait_for(lambda: trainer.steps_run >= 2)
        assert client.fine_tuning.jobs.retrieve(queued.id).status == "queued"
        assert client.fine_tuning.jobs.cancel(running.id).status == "cancelled"
        wait_for(
            lambda: service.worker.current == queued.id or trainer.jobs[-1].job_id == queued.id
        )
        steps = trainer.steps_run
        assert steps < 40 * 5
        assert client.fine_tuning.jobs.retrieve(running.id).status == "cancelled"
        assert not (tmp_path / "work" / running.id).exists()
        assert client.fine_tuning.jobs.cancel(queued.id).status == "cancelled"
        with pytest.raises(openai.BadRequestError):
            client.fine_tuning.jobs.cancel(running.id)
        events = [e.message for e in client.fine_tuning.jobs.list_events(running.id)]
        assert "Fine-tuning job cancelled" in events


def test_a_job_survives_a_restart_and_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    first = ScriptedTrainer(seconds=0.05, every=3)
    with server(tmp_path, first) as (client, _):
        train = upload(client, [example(n) for n in range(20)])
        job = client.fine_tuning.jobs.create(
            model=BASE, training_file=train, hyperparameters={"batch_size": 1, "n_epochs": 1}
        )
        wait_for(lambda: list((tmp_path / "work" / job.id).glob("checkpoint-6")))
    # The server stopped mid-job: the job is still running, its checkpoints kept.
    stopped_at = first.steps_run
    assert 6 <= stopped_at < 18

    second = ScriptedTrainer(every=3)
    with server(tmp_path, second) as (client, _):
        done = finished(client, job.id)
        assert done.status == "succeeded"
        assert len(second.jobs) == 1 and second.jobs[0].job_id == job.id
        total = len(second.jobs[0].train)  # one epoch of batches of one; 10% held out
        assert total == 18
        resumed_from = total - second.steps_run
        assert 6 <= resumed_from <= stopped_at  # resumed, not restarted
        messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
        assert "Resuming the fine-tuning job after a server restart" in messages
        assert f"Resumed from the checkpoint at step {resumed_from}" in messages
        steps = [e.data["step"] for e in client.fine_tuning.jobs.list_events(job.id, limit=100)
                 if e.type == "metrics"]  # fmt: skip
        assert len(steps) == len(set(steps))  # no step told twice


def test_the_worker_trains_one_job_at_a_time(tmp_path: Path) -> None:
    trainer = ScriptedTrainer(seconds=0.01)
    active: list[int] = []
    original = trainer.train
    lock = threading.Lock()

    def counting(job: TrainingJob, hooks: TrainingHooks) -> TrainingOutcome:
        with lock:
            active.append(1)
            assert len(active) == 1
        try:
            return original(job, hooks)
        finally:
            active.pop()

    trainer.train = counting  # type: ignore[method-assign]
    with server(tmp_path, trainer, api_key=None) as (client, _):
        train = upload(client, [example(n) for n in range(10)])
        jobs = [client.fine_tuning.jobs.create(model=BASE, training_file=train) for _ in range(3)]
        assert all(finished(client, j.id).status == "succeeded" for j in jobs)
        assert [j.job_id for j in trainer.jobs] == [j.id for j in jobs]


def test_a_second_server_on_the_same_data_folder_is_refused(tmp_path: Path) -> None:
    refused = pytest.raises(TunewiseError, match="another fine-tuning server")
    with server(tmp_path, ScriptedTrainer()), refused, server(tmp_path, ScriptedTrainer()):
        pass
    with server(tmp_path, ScriptedTrainer()) as (client, _):  # released when it stopped
        assert list(client.files.list()) == []


def test_events_sort_by_id_in_the_order_they_happened(tmp_path: Path) -> None:
    with server(tmp_path, ScriptedTrainer()) as (client, _):
        train = upload(client, [example(n) for n in range(10)])
        job = client.fine_tuning.jobs.create(model=BASE, training_file=train)
        finished(client, job.id)
        events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
        assert [e.id for e in events] == sorted((e.id for e in events), reverse=True)
