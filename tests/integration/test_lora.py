"""The LoRA arm on the real embedded model: train, reuse, resume after kill -9, export."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import environment, fresh_home, tunewise

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
INTENTS = ROOT / "tests" / "fixtures" / "support-intents"

# A training budget that exercises every part (validation checks, checkpoints, early-stopping
# bookkeeping) in well under a minute on 2 CPU cores.
TINY_LORA = (
    "  - {strategy: lora, max_train_examples: 40, epochs: 1, batch_size: 4,"
    " evaluations_per_epoch: 2, checkpoint_every: 2}\n"
)


@pytest.fixture
def lora_task(tmp_path: Path) -> Path:
    folder = tmp_path / "task"
    shutil.copytree(INTENTS / "data", folder / "data")
    text = (INTENTS / "task.yaml").read_text()
    (folder / "task.yaml").write_text(text + "candidates:\n" + TINY_LORA)
    return folder / "task.yaml"


def only_run(out: Path) -> Path:
    return max(out.iterdir(), key=lambda p: p.name)


def lora_entry(run_dir: Path) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    (entry,) = [c for c in results["candidates"] if c["strategy"] == "lora"]
    return entry


def test_lora_trains_resumes_after_a_kill_is_reused_and_exports(
    lora_task: Path, converted_home: Path, tmp_path: Path
) -> None:
    """One training: `tunewise train` killed (kill -9) after its first checkpoint, then `tunewise
    run` resumes it from that checkpoint and measures the adapter; a second run reuses it; the
    adapter exports, and its merged model answers as the adapter does."""
    home = fresh_home(converted_home, tmp_path)
    step = kill_after_a_checkpoint(["train", str(lora_task)], home)
    assert not any(p for p in home.glob("adapters/*") if not p.name.endswith(".work"))

    out = tmp_path / "runs"
    first = tunewise("run", str(lora_task), "--limit", "20", "--out", str(out), home=home)
    assert first.returncode == 0, first.stderr
    run_dir = only_run(out)
    entry = lora_entry(run_dir)
    training = entry["setup"]["training"]
    steps = -(-training["examples"] // 4)
    assert training["cached"] is False and training["steps"] == steps
    assert training["resumed_from_step"] >= step > 0
    assert not list(home.glob("adapters/*.work"))
    assert training["examples"] + training["validation_examples"] == 40
    assert training["validation_examples"] > 0
    every = steps // 2  # evaluations_per_epoch: 2, plus one at the last step
    assert [p["step"] for p in training["loss_curve"]] == sorted(
        {*range(every, steps + 1, every), steps}
    )
    assert training["loss_curve"][-1]["train_loss"] < training["loss_curve"][0]["train_loss"]
    assert training["peak_rss_mb"] > 0 and training["flops_estimate"] > 0
    assert entry["metrics"]["accuracy"]["n"] == 20
    assert (run_dir / entry["setup"]["adapter"] / "adapter_model.safetensors").exists()

    again = tunewise("run", str(lora_task), "--limit", "20", "--out", str(out), home=home)
    assert again.returncode == 0, again.stderr
    reused = lora_entry(only_run(out))
    assert reused["setup"]["training"]["cached"] is True
    assert reused["metrics"] == entry["metrics"]

    for fmt in ("adapter", "merged", "openai-jsonl"):
        done = tunewise("export", str(run_dir), "--candidate", "lora", "--format", fmt, home=home)
        assert done.returncode == 0, done.stderr
    exports = run_dir / "exports"
    assert (exports / "lora-adapter" / "adapter_config.json").exists()
    check_openai_jsonl(exports / "lora-openai-jsonl" / "train.jsonl", training["examples"])
    check_merged_matches_adapter(run_dir, exports / "lora-merged", lora_task, home, tmp_path)


def check_openai_jsonl(path: Path, expected_lines: int) -> None:
    lines = path.read_text().splitlines()
    assert len(lines) == expected_lines
    for line in lines:
        messages = json.loads(line)["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "assistant"]
        assert all(isinstance(m["content"], str) and m["content"] for m in messages)


def check_merged_matches_adapter(
    run_dir: Path, merged: Path, task: Path, home: Path, tmp_path: Path
) -> None:
    """The merged folder, run as a plain model with the same short prompt, answers the same."""
    out = tmp_path / "merged-runs"
    args = ("run", str(task), "--limit", "20", "--strategies", "zero-shot", "--model", str(merged))
    done = tunewise(*args, "--out", str(out), home=home)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in (only_run(out) / "predictions.jsonl").open()]
    adapter = [json.loads(x) for x in (run_dir / "predictions.jsonl").open()]
    assert [(x["example_id"], x["output"]) for x in lines] == [
        (x["example_id"], x["output"]) for x in adapter
    ]
    for a, b in zip(lines, adapter, strict=True):
        for label, p in a["probabilities"].items():
            assert p == pytest.approx(b["probabilities"][label], abs=1e-3)


def checkpoints(home: Path) -> list[int]:
    """Steps of the complete checkpoints (a folder still being written ends in .tmp)."""
    names = [p.name.removeprefix("checkpoint-") for p in home.glob("adapters/*.work/checkpoint-*")]
    return [int(name) for name in names if name.isdigit()]


def kill_after_a_checkpoint(args: list[str], home: Path) -> int:
    """Start the command as its own process and SIGKILL it once a checkpoint is complete;
    returns the checkpoint's step."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tunewise", *args],
        env=environment(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and not checkpoints(home):
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return max(checkpoints(home))
