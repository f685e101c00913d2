"""Where long work reports itself: the CLI draws progress bars, the library stays silent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Progress(Protocol):
    def stage(self, description: str, total: int) -> Callable[[int], None]:
        """Start a stage of `total` steps; returns a function that advances it."""
        ...


class SilentProgress:
    def stage(self, description: str, total: int) -> Callable[[int], None]:
        return lambda n: None
