"""End to end on loopback: `tunewise serve` a measured candidate of the embedded model, call it
with the official openai client, then `tunewise run` a task whose model is that endpoint."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from helpers import environment, fresh_home, tunewise

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-tunewise-e2e-7f3a9c0d1b2e"
KEY_ENV = "TUNEWISE_E2E_KEY"
LIMIT = "8"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(run_dir: Path, candidate: str, home: Path) -> Iterator[str]:
    """`tunewise serve` in its own process, guarded by KEY; yields its /v1 URL once healthy."""
    port = free_port()
    command = [sys.executable, "-m", "tunewise", "serve", str(run_dir), "--candidate", candidate]
    command += ["--port", str(port), "--api-key-env", KEY_ENV]
    env = {**environment(home), KEY_ENV: KEY}
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become healthy"
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait(timeout=30)


def only_run(out: Path) -> Path:
    [folder] = out.iterdir()
    return folder


def results_of(run_dir: Path) -> dict:
    return dict(json.loads((run_dir / "results.json").read_text()))


def predictions_of(run_dir: Path) -> dict[str, str]:
    lines = (run_dir / "predictions.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    return {row["example_id"]: row["output"] for row in rows if row["split"] == "test"}


def through_endpoint(task_file: Path, folder: Path, base_url: str) -> Path:
    """The same task, measured with its zero-shot candidate on the served endpoint."""
    task = yaml.safe_load(task_file.read_text())
    for key in ("train", "test", "documents"):
        if task["data"].get(key):
            task["data"][key] = str((task_file.parent / task["data"][key]).resolve())
    task["data"].pop("updates", None)
    task["models"] = {
        "served": {
            "model": "zero-shot",
            "base_url": base_url,
            "api_key_env": KEY_ENV,
            "prices": {"input_per_million": 0.15, "output_per_million": 0.6},
            "concurrency": 4,
        }
    }
    task["model"] = "served"
    # The served candidate repairs its own answers, as measured; repairing them again through
    # the endpoint would send the repair request as a new input.
    task["candidates"] = [{"strategy": "zero-shot", "name": "endpoint", "max_repairs": 0}]
    path = folder / "task.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(task), encoding="utf-8")
    return path


def assert_key_in_no_file(*folders: Path) -> None:
    for folder in folders:
        for root, _dirs, files in os.walk(folder):  # symlinks (the shared model) not followed
            for name in files:
                path = Path(root) / name
                assert KEY.encode() not in path.read_bytes(), path


def test_serve_then_run_through_the_endpoint(converted_home: Path, tmp_path: Path) -> None:
    # A text task, so the generation path runs end to end; the label path (logprobs both ways)
    # is covered by the serve and endpoint-backend unit tests.
    home = fresh_home(converted_home, tmp_path)
    runs = tmp_path / "runs"
    task_file = ROOT / "examples" / "country-facts" / "task.yaml"
    local = tunewise(
        "run", str(task_file), "--strategies", "zero-shot", "--limit", LIMIT,
        "--out", str(runs / "local"), home=home,
    )  # fmt: skip
    assert local.returncode == 0, local.stderr
    local_run = only_run(runs / "local")

    with serving(local_run, "zero-shot", home) as base_url:
        client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0)
        assert [m.id for m in client.models.list()] == ["zero-shot"]
        reply = client.chat.completions.create(
            model="zero-shot", messages=[{"role": "user", "content": "What is the capital?"}]
        )
        assert reply.choices[0].message.content
        assert reply.usage is not None and reply.usage.prompt_tokens > 0
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()

        remote_task = through_endpoint(task_file, tmp_path / "remote", base_url)
        env_run = [
            sys.executable, "-m", "tunewise", "run", str(remote_task), "--limit", LIMIT,
            "--out", str(runs / "remote"),
        ]  # fmt: skip
        remote = subprocess.run(
            env_run, env={**environment(home), KEY_ENV: KEY}, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
        assert remote.returncode == 0, remote.stderr
    remote_run = only_run(runs / "remote")

    [entry] = results_of(remote_run)["candidates"]
    assert entry["status"] == "measured"
    assert entry["params"]["endpoint"] == {"base_url": base_url, "model": "zero-shot"}
    assert entry["usage"]["estimated_token_counts"] == 0  # the server reported usage
    assert entry["usage"]["latency_p50_ms"] > 0
    assert entry["cost"]["per_request"]["basis"] == "tokens"
    # The endpoint serves the very candidate the local run measured: the same answers.
    assert predictions_of(remote_run) == predictions_of(local_run)
    local_usage = results_of(local_run)["candidates"][0]["usage"]
    assert entry["usage"]["input_tokens_per_request"] == local_usage["input_tokens_per_request"]
    assert_key_in_no_file(runs, home, tmp_path / "remote")
