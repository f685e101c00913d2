"""Training on N processes: `accelerate launch` runs this module once per process, each reading
the same job file and running the same train_adapter; rank 0 writes progress lines to stdout,
which the launching process turns into its progress bar.

The launch is data-parallel (DDP) unless an accelerate config file says otherwise (FSDP,
DeepSpeed): NCCL on GPUs, gloo on CPU. Ports are picked free, so several trainings on one
machine do not collide.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tunewise.errors import TunewiseError
from tunewise.finetune.train import Advance
from tunewise.finetune.trainers import JOB_FILE, TrainingJob

PROGRESS = "tunewise-progress"  # a stdout line "tunewise-progress N": N more optimizer steps


@dataclass(frozen=True)
class LaunchedTrainer:
    """Training under `accelerate launch --num_processes N` as a subprocess."""

    processes: int
    accelerate_config: Path | None = None

    def train(self, job: TrainingJob, advance: Advance) -> dict[str, Any]:
        job.work.mkdir(parents=True, exist_ok=True)
        job_file = job.work / JOB_FILE
        job_file.write_text(job.to_json(), encoding="utf-8")
        command, environment = self.command(job_file)
        _run(command, environment, advance, self.processes)
        record = job.out / "training.json"
        if not record.exists():
            raise TunewiseError(
                f"training on {self.processes} processes ended without writing {record}"
            )
        return dict(json.loads(record.read_text(encoding="utf-8")))

    def command(self, job_file: Path, gpus: int | None = None) -> tuple[list[str], dict[str, str]]:
        """The `accelerate launch` command line and its environment. Without a config file: DDP
        over this machine's GPUs (NCCL), one a process, or over CPU processes (gloo) when there
        is no GPU, each with an equal share of the CPU threads. `gpus`: the machine's CUDA GPUs
        (default: as torch finds them)."""
        import torch

        gpus = torch.cuda.device_count() if gpus is None else gpus
        cuda = gpus > 0
        launch = [sys.executable, "-m", "accelerate.commands.launch"]
        if self.accelerate_config is not None:
            if not self.accelerate_config.is_file():
                raise TunewiseError(
                    f"{self.accelerate_config}: no such accelerate config file; write one with "
                    "`accelerate config` or start from examples/accelerate/"
                )
            launch += ["--config_file", str(self.accelerate_config)]
        elif cuda and gpus < self.processes:
            raise TunewiseError(
                f"--train-processes {self.processes} needs a GPU for each process; this machine "
                f"has {gpus} (an accelerate config file can say otherwise)"
            )
        else:  # flags in full: a default config of `accelerate config` must not sneak in
            launch += ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no"]
            launch += ["--dynamo_backend", "no"]
        launch += ["--num_processes", str(self.processes), "--main_process_port", str(_free_port())]
        environment = dict(os.environ)
        if not cuda:
            threads = max(1, torch.get_num_threads() // self.processes)
            launch += ["--num_cpu_threads_per_process", str(threads)]
            environment["ACCELERATE_USE_CPU"] = "true"  # each process: gloo on CPU
        return [*launch, "-m", "tunewise.finetune.launcher", str(job_file)], environment


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(command: list[str], environment: dict[str, str], advance: Advance, n: int) -> None:
    """Run the launch, turning rank 0's progress lines into `advance` calls; a failure raises
    naming each failed process's exception. Interrupted, it stops the processes it started."""
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as errors:
        process = subprocess.Popen(
            command, env=environment, stdout=subprocess.PIPE, stderr=errors, text=True,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        try:
            output = _follow(process.stdout, advance)
            code = process.wait()
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=60)
        if code != 0:
            errors.seek(0)
            raise TunewiseError(
                f"training on {n} processes failed (exit code {code}):\n"
                f"{_what_failed(errors.readlines(), output)}"
            )


FAILURE = re.compile(r"^\[rank(\d+)\]: ([\w.]*(?:Error|Exception|Interrupt|Exit)\b.*)$")


def _what_failed(errors: list[str], output: deque[str]) -> str:
    """Each failed process's exception (its traceback's last line), else the end of what the
    launch wrote."""
    last = {m.group(1): m.group(2) for line in errors if (m := FAILURE.match(line.rstrip()))}
    if last:
        return "\n".join(f"rank {rank}: {message}" for rank, message in sorted(last.items()))
    return "".join([*errors[-20:], *output]).strip()


def _follow(stream: IO[str] | None, advance: Advance) -> deque[str]:
    """Read the processes' stdout to its end: progress lines advance the bar, the last few
    other lines are kept for an error message."""
    kept: deque[str] = deque(maxlen=10)
    for line in stream or ():
        if line.startswith(PROGRESS):
            advance(int(line.split()[1]))
        else:
            kept.append(line)
    return kept


def _die_with_parent() -> None:
    """Linux: end this process when the one that started it ends, even by SIGKILL, so a killed
    run leaves no training behind (torchrun starts each process in a session of its own, out
    of reach of a signal to the launching process's group)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent ended before the request took hold
            os._exit(1)


def main(arguments: list[str]) -> None:
    """One process of the launch: train the job; rank 0 reports progress on stdout."""
    _die_with_parent()
    job = TrainingJob.from_json(Path(arguments[0]).read_text(encoding="utf-8"))
    rank0 = os.environ.get("RANK", "0") == "0"
    job.run(_report if rank0 else lambda n: None)


def _report(n: int) -> None:
    print(f"{PROGRESS} {n}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
