"""The flags of `tunewise run` and `tunewise train` that say where adapters train: how many
processes, and their accelerate config. They override task.yaml's `training:` block."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tunewise.task.training_processes import with_training

if TYPE_CHECKING:
    from tunewise.task.config import Task

TrainProcesses = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Train each adapter on N processes under `accelerate launch` (DDP: NCCL on GPUs, "
        "gloo on CPU), batch_size examples each a step (overrides training.processes).",
    ),
]
AccelerateConfig = Annotated[
    Path | None,
    typer.Option(
        help="An accelerate config file for those processes: DDP, FSDP, DeepSpeed (overrides "
        "training.accelerate_config).",
    ),
]


def load_with_training(task_file: Path, processes: int | None, config: Path | None) -> Task:
    """The task file, with the training flags where given."""
    from tunewise.task.loading import load_task

    return with_training(load_task(task_file), processes, config)
