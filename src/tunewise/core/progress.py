"""Where long work reports itself: the CLI draws progress bars, the library stays silent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable


class Progress(Protocol):
    def stage(self, description: str, total: int) -> Callable[[int], None]:
        """Start a stage of `total` steps; returns a function that advances it."""
        ...


StatusUpdate = Callable[[str, int, int | None], None]
"""(status in words, steps done, total steps or None while unknown)."""


@runtime_checkable
class StatusProgress(Protocol):
    """A progress that can also show work whose total is learnt as it runs, under a status
    that changes (a fine-tuning service's job: queued, running, step 40 of 120)."""

    def status_stage(self, description: str) -> StatusUpdate: ...


class SilentProgress:
    def stage(self, description: str, total: int) -> Callable[[int], None]:
        return lambda n: None
