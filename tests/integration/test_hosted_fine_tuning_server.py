"""hosted-fine-tuning through `tunewise fine-tuning-server` on loopback (the embedded model):
a client killed mid-poll prints the job and its cancel line; the server, killed -9 mid-job and
restarted, completes the job from its checkpoint; the re-run re-attaches (the server holds one
job, not two), and the service's fine-tuned model measures as a local lora candidate with the
same hyperparameters on the same data does, within the confidence intervals; through the
official openai client the `ft:` model answers with logprobs and chooses among labels."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from helpers import environment, fresh_home, tunewise

# Two trainings of the embedded model (the server's and lora's) and three model loads.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
INTENTS = ROOT / "tests" / "fixtures" / "support-intents"
BASE = "smollm2-135m-instruct"
KEY = "sk-tunewise-hosted-5b7d"
KEY_ENV = "TUNEWISE_HOSTED_TEST_KEY"
# The same training on both sides: 40 examples (36 trained, 4 validating), 1 epoch, batch 4,
# the lora strategy's learning rate (the server's multiplier 1), the task's seed.
LORA = "  - {strategy: lora, max_train_examples: 40, epochs: 1, batch_size: 4}\n"
HOSTED = (
    "  - {strategy: hosted-fine-tuning, model: ftserver, max_train_examples: 40, n_epochs: 1,"
    " batch_size: 4, learning_rate_multiplier: 1, poll_seconds: 1}\n"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(home: Path, data: Path, port: int) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "tunewise", "fine-tuning-server", "--model", BASE,
        "--port", str(port), "--api-key-env", KEY_ENV, "--data-dir", str(data),
        "--checkpoint-every", "2",
    ]  # fmt: skip
    server = subprocess.Popen(
        command, env={**environment(home), KEY_ENV: KEY}, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 180
    while True:
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not become healthy"
        time.sleep(0.3)


def ctrl_c_as_a_terminal_has_it() -> None:
    """SIGINT's default action in the client: a suite started in the background by a shell
    without job control inherits SIGINT ignored, and so would the client, which would then
    never see the Ctrl-C this test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def task_file(tmp_path: Path, url: str) -> Path:
    folder = tmp_path / "task"
    shutil.copytree(INTENTS / "data", folder / "data")
    models = (
        f"models:\n  ftserver: {{model: {BASE}, base_url: '{url}', api_key_env: {KEY_ENV},"
        " fine_tuning: true}\n"
    )
    text = (INTENTS / "task.yaml").read_text() + models + "candidates:\n" + LORA + HOSTED
    (folder / "task.yaml").write_text(text)
    return folder / "task.yaml"


def wait_for(check: Callable[[], Any], timeout: float = 300.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)
    return found


def events(service: openai.OpenAI, job: str) -> list[Any]:
    return list(service.fine_tuning.jobs.list_events(job, limit=100))


def finished(service: openai.OpenAI, job: str) -> Any:
    found = service.fine_tuning.jobs.retrieve(job)
    return found if found.status in ("succeeded", "failed", "cancelled") else None


def answers_with_logprobs_and_among_labels(service: openai.OpenAI, model: str, task: Path) -> None:
    """The fine-tuned model's chat completions: tokens with their top logprobs, a choice among
    the labels (`guided_choice`); the base model answers beside it."""
    rows = [json.loads(line) for line in (task / "data" / "train.jsonl").open()]
    labels = sorted({row["output"] for row in rows})
    question = [{"role": "user", "content": rows[30]["input"]}]
    reply = service.chat.completions.create(
        model=model, messages=question, logprobs=True, top_logprobs=3, max_tokens=12
    )  # fmt: skip
    choice = reply.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
    assert all(len(t.top_logprobs) == 3 for t in choice.logprobs.content)
    assert all(t.logprob <= 0 for t in choice.logprobs.content)
    chosen = service.chat.completions.create(
        model=model, messages=question, logprobs=True, top_logprobs=7,
        extra_body={"guided_choice": labels},
    )  # fmt: skip
    assert chosen.choices[0].message.content in labels
    base = service.chat.completions.create(model=BASE, messages=question, max_tokens=4)
    assert base.usage is not None and base.usage.prompt_tokens > 0


def job_ids(home: Path) -> list[str]:
    records = [json.loads(p.read_text()) for p in home.glob("fine-tuning-jobs/*/job.json")]
    return [r["job_id"] for r in records if r.get("job_id")]


def test_a_hosted_candidate_trains_on_the_server_re_attaches_and_matches_lora(
    converted_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = fresh_home(converted_home, tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    task = task_file(tmp_path, url)
    server = start_server(home, tmp_path / "server-data", port)
    try:
        # The client is interrupted (Ctrl-C) once the job's id is on disk: the job runs on.
        out = tmp_path / "runs"
        command = [sys.executable, "-m", "tunewise", "run", str(task), "--limit", "24",
                   "--strategies", "hosted-fine-tuning", "--out", str(out)]  # fmt: skip
        client = subprocess.Popen(
            command, env={**environment(home), KEY_ENV: KEY}, stderr=subprocess.PIPE, text=True,
            preexec_fn=ctrl_c_as_a_terminal_has_it,
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while not job_ids(home):
            assert client.poll() is None, client.stderr.read() if client.stderr else ""
            assert time.monotonic() < deadline, "no job id was written"
            time.sleep(0.2)
        client.send_signal(signal.SIGINT)
        _, said = client.communicate(timeout=60)
        (job,) = job_ids(home)
        assert client.returncode == 130, said
        assert f"fine-tuning job {job} keeps running" in said
        assert f"curl -X POST {url}/fine_tuning/jobs/{job}/cancel" in said and KEY not in said

        # The job trains on (alone: two trainings at once on a small machine crawl). The server
        # is killed -9 after a checkpoint; restarted, it resumes the job from there.
        service = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0)
        wait_for(
            lambda: any(e.message.startswith("Checkpoint created") for e in events(service, job))
        )
        server.send_signal(signal.SIGKILL)
        server.wait()
        server = start_server(home, tmp_path / "server-data", port)
        done = wait_for(lambda: finished(service, job), timeout=900)
        assert done.status == "succeeded", done.error
        said = [e.message for e in events(service, job)]
        assert "Resuming the fine-tuning job after a server restart" in said
        resumed = [m for m in said if m.startswith("Resumed from the checkpoint at step ")]
        assert resumed and int(resumed[0].rsplit(" ", 1)[1]) >= 2
        assert service.fine_tuning.jobs.checkpoints.list(job).data
        assert done.fine_tuned_model in [m.id for m in service.models.list()]
        answers_with_logprobs_and_among_labels(service, done.fine_tuned_model, INTENTS)

        # The re-run re-attaches to the job by the id on disk, and measures lora beside it.
        monkeypatch.setenv(KEY_ENV, KEY)
        done = tunewise("run", str(task), "--limit", "24", "--out", str(out), home=home)
        assert done.returncode == 0, done.stderr
        assert [j.id for j in service.fine_tuning.jobs.list(limit=100).data] == [job]
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert KEY not in (server.stderr.read() if server.stderr else "")

    run_dir = max(out.iterdir(), key=lambda p: p.name)
    results = json.loads((run_dir / "results.json").read_text())
    entries = {c["strategy"]: c for c in results["candidates"]}
    lora, hosted = entries["lora"], entries["hosted-fine-tuning"]
    assert hosted["status"] == "measured" and hosted["params"]["job_id"] == job
    training = hosted["setup"]["training"]
    assert training["remote"] and training["trained_tokens"] > 0
    assert training["examples"] == lora["setup"]["training"]["examples"]
    a, b = lora["metrics"]["accuracy"], hosted["metrics"]["accuracy"]
    assert a["n"] == b["n"] == 24
    assert a["ci_low"] <= b["value"] <= a["ci_high"] and b["ci_low"] <= a["value"] <= b["ci_high"]
    assert KEY not in "".join(
        p.read_text(errors="ignore") for folder in (home, run_dir) for p in folder.rglob("*.json")
    )
