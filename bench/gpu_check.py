"""The GPU path, checked by one prepared script on a CUDA machine: LoRA and QLoRA (bf16, SDPA)
on the embedded model and examples/review-sentiment, and DDP on two processes when two GPUs
exist.

    .venv/bin/python bench/gpu_check.py [--out bench/results/gpu_check.json] [--wheels DIR]
    .venv/bin/python bench/gpu_check.py --dry-run      # on any machine, no GPU needed

Steps, each with its own time limit (the whole stays under 8 minutes on one H100):
  install   bitsandbytes (the `gpu` extra's pin), from PyPI or --wheels DIR (an offline
            machine); a CPU-only torch stops the check, naming the CUDA wheel to install
  convert   the embedded model to safetensors (once per TUNEWISE_HOME)
  lora      `tunewise run` of a pinned lora candidate, --dtype bfloat16, every test example
  qlora     the same with qlora (4-bit NF4 base, bf16 compute)
  ddp       lora with --train-processes 2 (NCCL), only where two GPUs exist
Per part: examples/s trained, peak GPU memory, best validation loss, accuracy with its 95% CI.
One JSON out (its schema: GpuCheck below), a table printed. --dry-run checks every step
without running one: the imports, each task file loads, each command parses as the CLI reads
it, the install requirement, and the JSON against its schema.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "review-sentiment"
BITSANDBYTES = "bitsandbytes>=0.45"  # as pyproject.toml's `gpu` extra
DEADLINE_S = 450  # the whole check; each part also has its own limit
LIMITS_S = {"install": 60, "convert": 60, "lora": 110, "qlora": 110, "ddp": 110}
CANDIDATE = "{{strategy: {strategy}, epochs: 1, batch_size: 16, evaluations_per_epoch: 2}}"


class Accuracy(BaseModel):
    value: float
    ci_low: float
    ci_high: float
    n: int


class Part(BaseModel):
    name: str
    status: Literal["ok", "failed", "timeout", "skipped", "planned"]
    seconds: float = 0.0
    command: list[str] = []
    reason: str | None = None
    examples_per_second: float | None = None
    peak_gpu_memory_mb: float | None = None
    best_validation_loss: float | None = None
    accuracy: Accuracy | None = None
    processes: int | None = None


class GpuCheck(BaseModel):
    device: str
    torch: str
    cuda: str | None
    bitsandbytes: str | None
    dry_run: bool
    parts: list[Part]


def task_file(folder: Path, strategy: str) -> Path:
    """review-sentiment with one pinned candidate of `strategy` (the data stays where it is)."""
    text = (EXAMPLE / "task.yaml").read_text(encoding="utf-8").split("\ncandidates:")[0]
    text = text.replace("data/", f"{EXAMPLE / 'data'}/")
    path = folder / f"task-{strategy}.yaml"
    candidate = CANDIDATE.format(strategy=strategy)
    path.write_text(f"{text.rstrip()}\ncandidates:\n  - {candidate}\n", encoding="utf-8")
    return path


def plan(folder: Path, gpus: int, wheels: Path | None) -> list[tuple[str, list[str]]]:
    """(part, command) in order; ddp only with two GPUs."""
    pip = [sys.executable, "-m", "pip", "install", "--quiet", BITSANDBYTES]
    if wheels is not None:
        pip += ["--no-index", "--find-links", str(wheels)]
    convert = "from tunewise.models.weights import embedded_model_folder as f; "
    convert += "from tunewise.home import tunewise_home as h; print(f(h()))"
    tunewise = [sys.executable, "-m", "tunewise"]
    parts = [("install", pip), ("convert", [sys.executable, "-c", convert])]
    for name, strategy, extra in (("lora", "lora", []), ("qlora", "qlora", [])) + (
        (("ddp", "lora", ["--train-processes", "2"]),) if gpus >= 2 else ()
    ):
        task = task_file(folder, strategy)
        out = folder / f"runs-{name}"
        run = ["run", str(task), "--dtype", "bfloat16", "--limit", "all", "--out", str(out)]
        parts.append((name, [*tunewise, *run, *extra]))
    return parts


def run_part(name: str, command: list[str], limit: float, folder: Path) -> Part:
    """Run one part as its own process group; past its limit the group is killed."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        reason = f"stopped at its {limit:g} s limit"
        return Part(name=name, status="timeout", seconds=limit, command=command, reason=reason)
    seconds = round(time.perf_counter() - started, 1)
    if process.returncode != 0:
        tail = output.strip().splitlines()[-5:]
        return Part(name=name, status="failed", seconds=seconds, command=command,
                    reason=" | ".join(tail))  # fmt: skip
    measured = measurements(folder / f"runs-{name}") if name in LIMITS_S else {}
    return Part(name=name, status="ok", seconds=seconds, command=command, **measured)


def measurements(runs: Path) -> dict[str, Any]:
    """A part's figures from its run's results.json (nothing for install and convert)."""
    found = sorted(runs.glob("*/results.json")) if runs.exists() else []
    if not found:
        return {}
    (entry,) = json.loads(found[-1].read_text())["candidates"]
    if entry.get("status") == "skipped":
        return {"reason": entry.get("skipped_reason")}
    training = entry["setup"]["training"]
    trained = training["examples"] * training["epochs"]
    accuracy = entry["metrics"]["accuracy"]
    return {
        "examples_per_second": round(trained / training["seconds"], 1),
        "peak_gpu_memory_mb": training.get("peak_gpu_memory_mb"),
        "best_validation_loss": training["best_validation_loss"],
        "accuracy": {k: accuracy[k] for k in ("value", "ci_low", "ci_high", "n")},
        "processes": training.get("processes"),
    }


def dry_run(parts: list[tuple[str, list[str]]]) -> list[Part]:
    """Every step checked, none run: each task loads, each command parses as the CLI reads it,
    the install requirement parses, and the launch of two processes can be built."""
    import typer.main
    from packaging.requirements import Requirement

    from tunewise.cli.main import app
    from tunewise.finetune.launcher import LaunchedTrainer
    from tunewise.models.weights import embedded_package
    from tunewise.task.loading import load_task

    Requirement(BITSANDBYTES)
    if importlib.util.find_spec("pip") is None:
        raise SystemExit("gpu_check installs bitsandbytes with pip, which is not installed")
    embedded_package()  # the embedded model's pip package is installed
    group: Any = typer.main.get_command(app)
    for _, command in parts:
        if command[1:3] == ["-m", "tunewise"]:
            sub = group.commands[command[3]]
            sub.make_context(command[3], list(command[4:]))  # raises on a bad flag or value
            load_task(command[4])
        elif command[1] == "-c":
            compile(command[2], "<convert>", "exec")
    LaunchedTrainer(2).command(Path("job.json"), gpus=2)
    return [Part(name=name, status="planned", command=command) for name, command in parts]


def versions() -> dict[str, Any]:
    import importlib.metadata

    import torch

    try:
        bnb: str | None = importlib.metadata.version("bitsandbytes")
    except importlib.metadata.PackageNotFoundError:
        bnb = None
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else f"CPU ({platform.processor() or '?'})"
    return {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
            "bitsandbytes": bnb}  # fmt: skip


def check(folder: Path, wheels: Path | None) -> list[Part]:
    """Run the parts in order, each within its limit and the whole within DEADLINE_S."""
    import torch

    if not torch.cuda.is_available():
        hint = "no CUDA GPU" if torch.version.cuda else f"torch {torch.__version__} is CPU-only"
        raise SystemExit(
            f"gpu_check needs a CUDA GPU: {hint}. Install a CUDA torch first, e.g. "
            "pip install torch==2.13.0 (the default Linux x86-64 wheel on PyPI is CUDA-built), "
            "then pip install -e '.[gpu]'"
        )
    started, done = time.perf_counter(), []
    for name, command in plan(folder, torch.cuda.device_count(), wheels):
        left = DEADLINE_S - (time.perf_counter() - started)
        if name == "install" and versions()["bitsandbytes"]:
            done.append(Part(name=name, status="skipped", reason="bitsandbytes already installed"))
        elif left < 20:
            done.append(Part(name=name, status="skipped", reason="the check's deadline"))
        else:
            done.append(run_part(name, command, min(LIMITS_S[name], left), folder))
        print(f"{name}: {done[-1].status} ({done[-1].seconds} s)", flush=True)
    return done


def table(result: GpuCheck) -> str:
    lines = [f"{result.device}, torch {result.torch}, CUDA {result.cuda}, "
             f"bitsandbytes {result.bitsandbytes}",
             f"{'part':<8} {'status':<8} {'s':>6} {'ex/s':>8} {'peak MB':>9} {'val loss':>9} "
             "accuracy (95% CI, n)"]  # fmt: skip
    for p in result.parts:
        accuracy = (
            f"{p.accuracy.value:.3f} [{p.accuracy.ci_low:.3f}, {p.accuracy.ci_high:.3f}] "
            f"n={p.accuracy.n}" if p.accuracy else (p.reason or "")
        )  # fmt: skip
        figures = [p.examples_per_second, p.peak_gpu_memory_mb, p.best_validation_loss]
        shown = ["-" if f is None else f"{f:g}" for f in figures]
        lines.append(f"{p.name:<8} {p.status:<8} {p.seconds:>6.1f} {shown[0]:>8} {shown[1]:>9} "
                     f"{shown[2]:>9} {accuracy}")  # fmt: skip
    return "\n".join(lines)


def main(arguments: list[str] | None = None) -> GpuCheck:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/gpu_check.json")
    parser.add_argument("--work", type=Path, help="Folder for tasks and runs (default: temp).")
    parser.add_argument("--wheels", type=Path, default=None, help="Install from these wheels.")
    parser.add_argument("--dry-run", action="store_true", help="Check every step; run none.")
    args = parser.parse_args(arguments)
    folder = args.work or Path(tempfile.mkdtemp(prefix="gpu_check-"))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    # A dry run plans as for two GPUs, so that the ddp command is checked too.
    parts = dry_run(plan(folder, 2, args.wheels)) if args.dry_run else check(folder, args.wheels)
    result = GpuCheck(**versions(), dry_run=args.dry_run, parts=parts)
    GpuCheck.model_validate_json(result.model_dump_json())  # the schema holds
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    print(table(result))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
