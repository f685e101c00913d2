"""The library's Progress protocol drawn as rich progress bars, with an ETA, on stderr."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tunewise.cli.plan_command import show_plan
from tunewise.cli.terminal import errors

if TYPE_CHECKING:
    from tunewise.deciding.plan import LadderPlan
    from tunewise.task.config import Task


class BarProgress:
    """The library's Progress protocol, drawn with rich progress bars and an ETA."""

    def __init__(self, progress: Progress, task: Task | None = None) -> None:
        self._progress = progress
        self._task = task  # whose plan it shows

    def stage(self, description: str, total: int) -> Callable[[int], None]:
        task_id = self._progress.add_task(description, total=total)
        return lambda n: self._progress.advance(task_id, n)

    def status_stage(self, description: str) -> Callable[[str, int, int | None], None]:
        """A bar whose total is learnt as the work runs, its status beside the description."""
        task_id = self._progress.add_task(description, total=None)

        def update(status: str, done: int, total: int | None) -> None:
            text = f"{description}: {status}"
            self._progress.update(task_id, description=text, completed=done, total=total)

        return update

    def planned(self, plan: LadderPlan, budget: float | None) -> None:
        """The ladder's plan, printed above the bars before it spends anything."""
        name = self._task.name if self._task else "the task"
        show_plan(self._progress.console, name, plan, budget)


def progress_bars() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=errors,
        transient=False,
    )
