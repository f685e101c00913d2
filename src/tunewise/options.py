"""The options of a run that are not in task.yaml: the CLI's flags, and the Python API's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tunewise.core.budget import DEFAULT_BUDGET, parse_budget

DEFAULT_BUDGET_SECONDS = parse_budget(DEFAULT_BUDGET)


@dataclass(frozen=True)
class RunOptions:
    """The knobs of `tunewise run` that are not in task.yaml."""

    strategies: tuple[str, ...] | None = None
    model: str | None = None
    limit: int | Literal["all"] | None = None  # None: the task's data.test_sample
    strict: bool = False
    learning_curve: tuple[int, ...] | None = None  # training-set sizes for the first lora
    dtype: str = "auto"  # local models' inference dtype: auto | float32 | bfloat16
    repeats: int = 0  # sampled answers per example for flakiness (0: none)
    budget: float | None = (
        DEFAULT_BUDGET_SECONDS  # the default ladder's compute budget (None: none)
    )
    task_file: str = "task.yaml"  # how the task is named in the commands the run suggests
