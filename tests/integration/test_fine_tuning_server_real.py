"""`tunewise fine-tuning-server` on the real embedded model, driven by the official openai
client: upload chat JSONL, train, kill -9 the server mid-job, restart it, the job completes from
its checkpoint, and the `ft:` model answers (with logprobs, and choosing among labels)."""

from __future__ import annotations

import io
import json
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
from helpers import environment, fresh_home

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
INTENTS = ROOT / "tests" / "fixtures" / "support-intents" / "data"
BASE = "smollm2-135m-instruct"
KEY = "sk-tunewise-ft-3d9e"
KEY_ENV = "TUNEWISE_FT_TEST_KEY"
SYSTEM = "Classify the intent of one customer-support message. Answer with the label only."


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
    env = {**environment(home), KEY_ENV: KEY}
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
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


def chat_jsonl(lines: list[str]) -> bytes:
    rows = []
    for line in lines:
        example = json.loads(line)
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": example["input"]},
            {"role": "assistant", "content": example["output"]},
        ]
        rows.append(json.dumps({"messages": messages}) + "\n")
    return "".join(rows).encode()


def wait_for(check: Callable[[], Any], timeout: float = 300.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)
    return found


def test_train_kill_restart_and_answer_with_the_fine_tuned_model(
    converted_home: Path, tmp_path: Path
) -> None:
    home = fresh_home(converted_home, tmp_path)
    data, port = tmp_path / "server-data", free_port()
    url = f"http://127.0.0.1:{port}/v1"
    lines = (INTENTS / "train.jsonl").read_text().splitlines()
    labels = sorted({json.loads(line)["output"] for line in lines})
    server = start_server(home, data, port)
    try:
        client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0)
        train = client.files.create(
            file=("train.jsonl", io.BytesIO(chat_jsonl(lines[:12]))), purpose="fine-tune"
        )
        valid = client.files.create(
            file=("valid.jsonl", io.BytesIO(chat_jsonl(lines[12:14]))), purpose="fine-tune"
        )
        job = client.fine_tuning.jobs.create(
            model=BASE, training_file=train.id, validation_file=valid.id, suffix="intents",
            hyperparameters={"n_epochs": 1, "batch_size": 2}, seed=0,
        )  # fmt: skip

        def checkpointed() -> bool:
            events = client.fine_tuning.jobs.list_events(job.id, limit=100)
            return any(e.message.startswith("Checkpoint created") for e in events)

        wait_for(checkpointed)
        server.send_signal(signal.SIGKILL)
        server.wait()
        assert client.fine_tuning.jobs.retrieve  # the client object outlives the server
        server = start_server(home, data, port)

        def finished() -> Any:
            found = client.fine_tuning.jobs.retrieve(job.id)
            return found if found.status in ("succeeded", "failed", "cancelled") else None

        done = wait_for(finished)
        assert done.status == "succeeded", done.error
        assert done.fine_tuned_model == f"ft:{BASE}:intents:{job.id[-8:]}"
        assert done.trained_tokens and done.trained_tokens > 0
        messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
        assert "Resuming the fine-tuning job after a server restart" in messages
        resumed = [m for m in messages if m.startswith("Resumed from the checkpoint at step ")]
        assert resumed and int(resumed[0].rsplit(" ", 1)[1]) >= 2
        assert client.fine_tuning.jobs.checkpoints.list(job.id).data
        assert done.fine_tuned_model in [m.id for m in client.models.list()]

        question = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": json.loads(lines[30])["input"]},
        ]
        reply = client.chat.completions.create(
            model=done.fine_tuned_model, messages=question, logprobs=True, top_logprobs=3,
            max_tokens=12,
        )  # fmt: skip
        choice = reply.choices[0]
        assert choice.logprobs is not None and choice.logprobs.content
        assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
        assert all(len(t.top_logprobs) == 3 for t in choice.logprobs.content)
        assert all(t.logprob <= 0 for t in choice.logprobs.content)
        chosen = client.chat.completions.create(
            model=done.fine_tuned_model, messages=question, logprobs=True, top_logprobs=7,
            extra_body={"guided_choice": labels},
        )  # fmt: skip
        assert chosen.choices[0].message.content in labels
        base = client.chat.completions.create(model=BASE, messages=question, max_tokens=4)
        assert base.usage is not None and base.usage.prompt_tokens > 0
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert KEY not in (server.stderr.read() if server.stderr else "")
