"""hosted-fine-tuning against a scripted fake of OpenAI's fine-tuning API on loopback, driven
by the official `openai` client: one job per content key, its id on disk before polling,
re-attached after an interrupted poll (the service holds one job, not two), Ctrl-C's message,
a failed job or a rejected file as a skipped candidate while the run goes on, the cost from the
trained tokens, and the API key in no written file."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from conftest import SENTIMENT_TEST, SENTIMENT_TRAIN, keyword_rule, write_jsonl
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tunewise.core.costs import break_even_table
from tunewise.deciding.from_results import price_list
from tunewise.models.endpoint import Endpoint
from tunewise.records.results import write_run
from tunewise.run import RunOptions, run_task
from tunewise.strategies.hosted_fine_tuning.service_api import OpenAIService
from tunewise.strategies.hosted_fine_tuning.service_jobs import (
    JOBS_FOLDER,
    JobLeftRunning,
    JobRequest,
    JobStore,
    fine_tune,
)
from tunewise.task.loading import load_task

KEY = "sk-tunewise-FAKE-3c9e1a7b5d2f4e60"
KEY_ENV = "TW_FT_FAKE_KEY"
TRAINED_PER_EXAMPLE = 100  # the fake's trained tokens per training line and epoch
LABELLER = keyword_rule({"great": "positive", "love": "positive", "awful": "negative"}, "neutral")


@dataclass
class FakeService:
    """OpenAI's fine-tuning API, scripted: every look at a job moves it one state on
    (queued, running, then `outcome`); chat answers come from LABELLER for a fine-tuned model
    and "neutral" for the base."""

    outcome: str = "succeeded"  # or "failed"
    error: str = "The job failed due to an invalid training file. Line 2: too few examples."
    reject_upload: str | None = None  # a message: uploads get a 400 with it
    files: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)  # the bearer keys the client sent
    url: str = ""

    def app(self) -> FastAPI:
        app = FastAPI()
        app.middleware("http")(self.record)
        app.post("/v1/files")(self.upload)
        app.post("/v1/fine_tuning/jobs")(self.create)
        app.get("/v1/fine_tuning/jobs")(self.list_jobs)
        app.get("/v1/fine_tuning/jobs/{job_id}")(self.retrieve)
        app.get("/v1/fine_tuning/jobs/{job_id}/events")(self.events)
        app.post("/v1/chat/completions")(self.chat)
        return app

    async def record(self, request: Request, call_next: Any) -> Any:
        self.requests.append((request.method, request.url.path))
        self.keys.add(request.headers.get("authorization", ""))
        return await call_next(request)

    async def upload(self, request: Request) -> JSONResponse:
        form = await request.form()
        if self.reject_upload:
            return JSONResponse({"error": {"message": self.reject_upload}}, 400)
        upload = form["file"]
        content = await upload.read()  # type: ignore[union-attr]
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = content
        return JSONResponse(
            {"id": file_id, "object": "file", "bytes": len(content), "created_at": 1,
             "filename": upload.filename, "purpose": "fine-tune", "status": "processed"}  # type: ignore[union-attr]
        )  # fmt: skip

    async def create(self, request: Request) -> JSONResponse:
        body = await request.json()
        job_id = f"ftjob-{len(self.jobs) + 1}"
        hyper = body["method"]["supervised"]["hyperparameters"]
        self.jobs[job_id] = {
            "id": job_id, "object": "fine_tuning.job", "model": body["model"],
            "created_at": 1_000, "finished_at": None, "fine_tuned_model": None,
            "status": "queued", "trained_tokens": None, "error": None,
            "training_file": body["training_file"], "validation_file": body.get("validation_file"),
            "hyperparameters": hyper, "seed": body.get("seed"), "result_files": [],
            "organization_id": "org-fake", "metadata": body.get("metadata"),
            "user_provided_suffix": body.get("suffix"), "method": body["method"],
        }  # fmt: skip
        return JSONResponse(self.jobs[job_id])

    async def list_jobs(self) -> dict[str, Any]:  # ignores the metadata filter, as some do
        return {"object": "list", "data": list(self.jobs.values()), "has_more": False}

    async def retrieve(self, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        if job["status"] == "queued":
            job["status"] = "running"
        elif job["status"] == "running":
            self.finish(job)
        return job

    def finish(self, job: dict[str, Any]) -> None:
        job["status"], job["finished_at"] = self.outcome, 1_042
        if self.outcome == "failed":
            job["error"] = {"code": "invalid_training_file", "message": self.error, "param": None}
            return
        lines = self.files[job["training_file"]].decode().count("\n")
        epochs = job["hyperparameters"].get("n_epochs")
        job["trained_tokens"] = lines * TRAINED_PER_EXAMPLE * (epochs if epochs != "auto" else 3)
        job["fine_tuned_model"] = f"ft:{job['model']}:org::{job['id'][-4:]}"

    async def events(self, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        event = {"object": "fine_tuning.job.event", "level": "info", "type": "message"}
        data = [{**event, "id": f"{job_id}-ev-1", "created_at": 1_001, "message": "Validating"}]
        if job["status"] != "queued":
            metrics = {"step": 2, "total_steps": 4, "train_loss": 0.9, "valid_loss": 1.1}
            step = {"id": f"{job_id}-ev-2", "created_at": 1_002, "message": "Step 2/4"}
            data.append({**event, **step, "type": "metrics", "data": metrics})
        return {"object": "list", "data": data[::-1], "has_more": False}

    async def chat(self, request: Request) -> dict[str, Any]:
        body = await request.json()
        tuned = body["model"].startswith("ft:")
        answer = LABELLER(body["messages"]) if tuned else "neutral"
        return {
            "id": "c", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": answer}}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42},
        }  # fmt: skip

    @property
    def created(self) -> int:
        return self.requests.count(("POST", "/v1/fine_tuning/jobs"))


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeService]:
    monkeypatch.setenv(KEY_ENV, KEY)
    fake = FakeService()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    config = uvicorn.Config(fake.app(), log_level="error", access_log=False)
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    limit = time.monotonic() + 10
    while not runner.started:
        assert time.monotonic() < limit, "the fake service did not start"
        time.sleep(0.01)
    yield fake
    runner.should_exit = True
    thread.join(timeout=5)
    sock.close()


def task_file(tmp_path: Path, service: FakeService, candidates: str) -> Path:
    folder = tmp_path / "task"
    write_jsonl(folder / "data" / "train.jsonl", SENTIMENT_TRAIN * 2)
    write_jsonl(folder / "data" / "test.jsonl", SENTIMENT_TEST)
    (folder / "task.yaml").write_text(
        f"""\
name: hosted-sentiment
contract:
  objective: Classify the sentiment of one product review sentence.
  audience: Support analysts.
  source_material: The sentence only.
  output_format: {{type: label, labels: [positive, negative, neutral]}}
data: {{train: data/train.jsonl, test: data/test.jsonl}}
target: {{metric: accuracy, min: 0.8}}
usage: {{requests_per_month: 100000, horizon_months: 12}}
model: base
models:
  base:
    model: base-model
    base_url: {service.url}
    api_key_env: {KEY_ENV}
    max_retries: 0
    prices: {{input_per_million: 0.15, output_per_million: 0.6, training_per_million: 3.0}}
    fine_tuned_prices: {{input_per_million: 0.3, output_per_million: 1.2}}
candidates:
{candidates}""",
        encoding="utf-8",
    )
    return folder / "task.yaml"


HOSTED = "  - {strategy: few-shot, k: 6}\n  - {strategy: hosted-fine-tuning, poll_seconds: 0.01}\n"


def request_for(service: FakeService, epochs: int | str = "auto") -> JobRequest:
    conversations = [
        [{"role": "user", "content": x}, {"role": "assistant", "content": y}]
        for x, y in SENTIMENT_TRAIN
    ]
    lines = "".join(json.dumps({"messages": c}) + "\n" for c in conversations)
    hyper = {"n_epochs": epochs, "batch_size": "auto", "learning_rate_multiplier": "auto"}
    return JobRequest(service.url, "base-model", lines, lines[:200], hyper, 0, None, KEY_ENV)


def client(service: FakeService) -> OpenAIService:
    return OpenAIService(Endpoint("base-model", service.url, api_key_env=KEY_ENV, max_retries=0))


# ---- the job's life ------------------------------------------------------------------------


def test_a_run_fine_tunes_once_and_a_rerun_reuses_the_model(
    service: FakeService, home: Path, tmp_path: Path
) -> None:
    task = load_task(task_file(tmp_path, service, HOSTED))
    result = run_task(task, RunOptions())
    hosted = next(c for c in result.candidates if c.strategy == "hosted-fine-tuning")
    assert hosted.measured, hosted.skipped
    assert hosted.model == "base+hosted-fine-tuning:ftjob-1"
    assert hosted.params["fine_tuned_model"] == "ft:base-model:org::ob-1"
    assert hosted.metrics["accuracy"].value == pytest.approx(5 / 6)  # the fake's tuned rule
    training = hosted.setup.training
    assert training is not None and training.remote and not training.record()["cached"]
    assert training.record()["metrics"] == [
        {"step": 2, "total_steps": 4, "train_loss": 0.9, "valid_loss": 1.1}
    ]
    assert training.seconds == 42 and hosted.setup.seconds == 42  # the job's time on the service
    # The files sent hold the exact serving prompt (system prompt + input) and the answer.
    train_file = service.files[service.jobs["ftjob-1"]["training_file"]].decode().splitlines()
    first = json.loads(train_file[0])["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant"]
    assert service.created == 1

    again = run_task(task, RunOptions())
    rerun = next(c for c in again.candidates if c.strategy == "hosted-fine-tuning")
    assert rerun.setup.training is not None and rerun.setup.training.record()["cached"]
    assert service.created == 1 and len(service.files) == 2  # nothing uploaded or created again


def test_other_hyperparameters_make_another_job(service: FakeService, home: Path) -> None:
    first = fine_tune(request_for(service), client(service), home, name="a", poll_seconds=0)
    same = fine_tune(request_for(service), client(service), home, name="a", poll_seconds=0)
    other = fine_tune(request_for(service, 2), client(service), home, name="a", poll_seconds=0)
    assert (first.cached, same.cached, other.cached) == (False, True, False)
    assert first.record["job_id"] == same.record["job_id"] != other.record["job_id"]
    assert service.created == 2


def test_the_job_id_is_on_disk_before_polling(service: FakeService, home: Path) -> None:
    request = request_for(service)
    store = JobStore(home / JOBS_FOLDER / request.key())
    seen: list[dict[str, Any] | None] = []
    fine_tune(request, client(service), home, name="a", sleep=lambda _: seen.append(store.read()))
    assert seen and seen[0] is not None and seen[0]["job_id"] == "ftjob-1"
    assert seen[0]["status"] == "queued"  # written before the first look at the running job


def test_an_interrupted_poll_is_reattached_never_started_twice(
    service: FakeService, home: Path
) -> None:
    request = request_for(service)

    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(JobLeftRunning) as stopped:
        fine_tune(request, client(service), home, name="a", sleep=interrupt)
    message = str(stopped.value)
    assert "ftjob-1 keeps running" in message and "a re-run re-attaches" in message
    assert f"curl -X POST {service.url}/fine_tuning/jobs/ftjob-1/cancel" in message
    assert f"${KEY_ENV}" in message and KEY not in message
    finished = fine_tune(request, client(service), home, name="a", poll_seconds=0)
    assert finished.record["job_id"] == "ftjob-1" and finished.record["status"] == "succeeded"
    assert service.created == 1 and list(service.jobs) == ["ftjob-1"]


def test_a_job_created_but_never_written_is_found_by_its_key(
    service: FakeService, home: Path
) -> None:
    # A run killed between create and writing the id: the service's list finds the job again.
    request = request_for(service)
    with pytest.raises(JobLeftRunning):
        fine_tune(request, client(service), home, name="a", sleep=_raise_interrupt)
    (home / JOBS_FOLDER / request.key() / "job.json").unlink()
    finished = fine_tune(request, client(service), home, name="a", poll_seconds=0)
    assert finished.record["job_id"] == "ftjob-1" and service.created == 1


def _raise_interrupt(_: float) -> None:
    raise KeyboardInterrupt


def test_ctrl_c_prints_the_job_and_how_to_cancel_it(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from tunewise.cli.terminal import user_errors

    with pytest.raises(typer.Exit) as code, user_errors(False):
        raise JobLeftRunning("interrupted; fine-tuning job ftjob-9 keeps running ...")
    assert code.value.exit_code == 130
    assert "ftjob-9 keeps running" in capsys.readouterr().err


# ---- failure: skipped, and the run goes on -------------------------------------------------


def test_a_failed_job_skips_the_candidate_with_one_line(
    service: FakeService, home: Path, tmp_path: Path
) -> None:
    service.outcome = "failed"
    task = load_task(task_file(tmp_path, service, HOSTED))
    result = run_task(task, RunOptions())
    few, hosted = result.candidates
    assert few.measured and not hosted.measured
    reason = str(hosted.skipped)
    assert reason.startswith("fine-tuning job ftjob-1 failed: The job failed due to an invalid")
    assert "\n" not in reason
    again = run_task(task, RunOptions())  # remembered: no second (paid) job
    assert "delete" in str(again.candidates[1].skipped) and service.created == 1


def test_a_rejected_file_skips_the_candidate(
    service: FakeService, home: Path, tmp_path: Path
) -> None:
    service.reject_upload = "Invalid file format. Line 3: 'messages' is missing."
    result = run_task(load_task(task_file(tmp_path, service, HOSTED)), RunOptions())
    hosted = result.candidates[1]
    assert result.candidates[0].measured and service.created == 0
    assert "uploading train.jsonl: HTTP 400: Invalid file format. Line 3" in str(hosted.skipped)


# ---- cost, and the key in no file --------------------------------------------------------


def test_setup_costs_the_trained_tokens_and_requests_the_fine_tuned_price(
    service: FakeService, home: Path, tmp_path: Path
) -> None:
    task = load_task(task_file(tmp_path, service, HOSTED))
    result = run_task(task, RunOptions())
    hosted = result.candidates[1]
    inputs = hosted.cost_inputs()
    lines = len(service.files[service.jobs["ftjob-1"]["training_file"]].decode().splitlines())
    assert inputs.trained_tokens == lines * TRAINED_PER_EXAMPLE * 3 and inputs.training_seconds == 0
    run_dir = write_run(result, tmp_path / "runs")
    document = json.loads((run_dir / "results.json").read_text())
    cost = next(c for c in document["candidates"] if c["name"] == "hosted-fine-tuning")["cost"]
    assert cost["setup"]["usd"] == pytest.approx(inputs.trained_tokens * 3.0 / 1e6, rel=1e-5)
    assert "trained tokens at $3.00 per 1M" in cost["setup"]["detail"]
    assert "base+fine-tuned's price" in cost["per_request"]["detail"]
    (even,) = break_even_table(
        [c.cost_inputs() for c in result.candidates], price_list(task), 100_000, 12
    )
    assert (even.tuned, even.prompt, even.basis) == ("hosted-fine-tuning", "few-shot", "usd")


def test_the_api_key_is_in_no_written_file(
    service: FakeService, home: Path, tmp_path: Path
) -> None:
    result = run_task(load_task(task_file(tmp_path, service, HOSTED)), RunOptions())
    run_dir = write_run(result, tmp_path / "runs")
    assert f"Bearer {KEY}" in service.keys  # the key was sent, as it must be
    written = [p for folder in (home, run_dir) for p in folder.rglob("*") if p.is_file()]
    assert any(p.name == "job.json" for p in written)
    assert not [p for p in written if KEY.encode() in p.read_bytes()]


# ---- the ladder ------------------------------------------------------------------------------


def test_the_ladder_fine_tunes_on_the_service_of_an_endpoint_that_can(
    service: FakeService, home: Path, tmp_path: Path
) -> None:
    # Nothing pinned: the ladder reaches step 3 itself, with these settings (polls 10 ms apart).
    opted_in = "  - {strategy: hosted-fine-tuning, opt_in: true, poll_seconds: 0.01}\n"
    path = task_file(tmp_path, service, opted_in)
    path.write_text(path.read_text().replace("    prices:", "    fine_tuning: true\n    prices:"))
    write_jsonl(path.parent / "data" / "train.jsonl", SENTIMENT_TRAIN * 5)  # past the 50 minimum
    result = run_task(load_task(path), RunOptions(budget=None))
    assert result.ladder is not None
    (step,) = [s for s in result.ladder.steps if s.step == 3]
    assert (step.status, step.candidates) == ("run", ("hosted-fine-tuning",))
    assert "fine-tuned on the service" in step.reason and service.created == 1
    assert [c.strategy for c in result.candidates][-1] == "hosted-fine-tuning"


def test_without_fine_tuning_the_ladder_starts_no_job(
    service: FakeService, home: Path, tmp_path: Path
) -> None:
    path = task_file(tmp_path, service, "  []\n")
    write_jsonl(path.parent / "data" / "train.jsonl", SENTIMENT_TRAIN * 5)
    result = run_task(load_task(path), RunOptions(budget=None))
    assert result.ladder is not None
    (step,) = [s for s in result.ladder.steps if s.step == 3]
    assert step.status == "skipped" and "fine_tuning: true" in step.reason
    assert service.created == 0


def test_the_hosted_hybrid_trains_with_the_passages_it_answers_with(
    service: FakeService, home: Path, tmp_path: Path, fake_embedder: Any
) -> None:
    hybrid = "  - {strategy: hosted-hybrid, retriever: bm25, top_k: 1, poll_seconds: 0.01}\n"
    path = task_file(tmp_path, service, hybrid)
    documents = path.parent / "docs.jsonl"
    notes = {"id": "notes", "title": "Review notes", "text": "A blender is a kitchen machine."}
    documents.write_text(json.dumps(notes) + "\n")
    text = path.read_text().replace(
        "test: data/test.jsonl}", "test: data/test.jsonl, documents: docs.jsonl}"
    )
    path.write_text(text)
    result = run_task(load_task(path), RunOptions())
    (hosted,) = result.candidates
    assert hosted.measured, hosted.skipped
    assert hosted.model == "base+hosted-hybrid:ftjob-1" and hosted.params["top_k"] == 1
    trained = service.files[service.jobs["ftjob-1"]["training_file"]].decode().splitlines()
    # "I love this blender" finds the note: the passage is in the prompt it trains on.
    line = next(line for line in trained if "I love this blender" in line)
    assert "A blender is a kitchen machine." in line
