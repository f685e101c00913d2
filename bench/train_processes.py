"""Training on 2 processes x 1 thread against 1 process x 2 threads, at the same global batch.

    .venv/bin/python bench/train_processes.py [--examples 96] [--global-batch 8] [--repeats 1]

Both train the embedded model's LoRA adapter on examples/review-sentiment with `tunewise train`
(a subprocess each, in a fresh TUNEWISE_HOME that shares the converted model): one process
with 2 torch threads and batch_size = global batch, and `--train-processes 2` (DDP over gloo,
1 thread each) with batch_size = global batch / 2. Records the training loop's examples/s
(training.json's seconds: steps and validation checks, not the model's load) and the command's
wall time (for 2 processes: the launch, each process's imports and model load). Writes
bench/results/train_processes.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "review-sentiment"


def task_file(folder: Path, examples: int, batch: int) -> Path:
    """review-sentiment with one lora candidate: `examples` (a tenth held out), one epoch."""
    shutil.copytree(EXAMPLE / "data", folder / "data", dirs_exist_ok=True)
    text = (EXAMPLE / "task.yaml").read_text(encoding="utf-8").split("\ncandidates:")[0]
    lora = (
        f"  - {{strategy: lora, max_train_examples: {examples}, epochs: 1, batch_size: {batch},"
        " evaluations_per_epoch: 1}\n"
    )
    path = folder / f"task-{batch}.yaml"
    path.write_text(text.rstrip("\n") + "\ncandidates:\n" + lora, encoding="utf-8")
    return path


def train(task: Path, home: Path, processes: int) -> dict[str, Any]:
    """One `tunewise train`; its wall time and the adapter's training record."""
    shutil.rmtree(home / "adapters", ignore_errors=True)
    flags = ["--train-processes", str(processes)] if processes > 1 else []
    environment = {
        **os.environ, "TUNEWISE_HOME": str(home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2",
    }  # fmt: skip
    command = [sys.executable, "-m", "tunewise", "train", str(task), *flags]
    started = time.perf_counter()
    done = subprocess.run(command, env=environment, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    (record_path,) = home.glob("adapters/*/training.json")
    record = json.loads(record_path.read_text())
    trained = record["examples"] * record["epochs"]
    return {
        "processes": processes,
        "threads_per_process": 2 // processes,
        "batch_size": record["config"]["batch_size"],
        "examples": record["examples"],
        "steps": record["steps"],
        "training_seconds": record["seconds"],
        "examples_per_second": round(trained / record["seconds"], 2),
        "wall_seconds": round(wall, 1),
        "best_validation_loss": record["best_validation_loss"],
        "shared_prefix_tokens": record["shared_prefix_tokens"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=96)
    parser.add_argument("--global-batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/train_processes.json")
    args = parser.parse_args()
    from tunewise.home import tunewise_home
    from tunewise.models.weights import embedded_model_folder

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        home.mkdir()
        (home / "models").symlink_to(embedded_model_folder(tunewise_home()).parent)
        tasks = {n: task_file(Path(scratch), args.examples, args.global_batch // n) for n in (1, 2)}
        for repeat in range(args.repeats):
            for processes in (1, 2) if repeat % 2 == 0 else (2, 1):  # alternate the order
                rows.append({"repeat": repeat, **train(tasks[processes], home, processes)})
                print(json.dumps(rows[-1]), flush=True)
    document = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "load_average_before": os.getloadavg()},
        "command": " ".join(sys.argv), "global_batch": args.global_batch, "runs": rows,
    }  # fmt: skip
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
