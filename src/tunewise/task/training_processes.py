"""The `training:` block of task.yaml: how many processes train an adapter, and with which
accelerate config. Where training runs, not what it trains: it is left out of the task's hash,
and the adapter's cache key carries the process count (it sets the global batch)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from tunewise.core.strict import Strict

if TYPE_CHECKING:
    from tunewise.task.config import Task


class TrainingProcesses(Strict):
    """Data-parallel training under `accelerate launch`, or in this process (the default)."""

    processes: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="Processes that train each adapter: 1 trains in this process; N > 1 runs "
        "each training under `accelerate launch --num_processes N` (DDP: NCCL on GPUs, gloo on "
        "CPU), each process with batch_size examples a step (a global batch of N x batch_size).",
    )
    accelerate_config: Path | None = Field(
        default=None,
        description="An accelerate config file for those processes (DDP, FSDP, DeepSpeed; see "
        "examples/accelerate/), relative to the task file; --train-processes overrides its "
        "num_processes.",
    )


def with_training(task: Task, processes: int | None, accelerate_config: Path | None) -> Task:
    """The task with the command line's --train-processes and --accelerate-config, where given,
    in place of its `training:` settings (a config path from the command line is taken as it is
    written, relative to the working folder)."""
    update: dict[str, object] = {}
    if processes is not None:
        update["processes"] = processes
    if accelerate_config is not None:
        update["accelerate_config"] = accelerate_config.resolve()
    if not update:
        return task
    return task.model_copy(update={"training": task.training.model_copy(update=update)})
