"""tunewise: measure whether to prompt, add RAG, fine-tune, or combine them, on your own task.

    from pathlib import Path
    from tunewise import load_run, load_task, run_task, write_run

    result = run_task(load_task("examples/review-sentiment/task.yaml"))
    folder = write_run(result, Path("runs"))
    print(load_run(folder)["recommendation"]["next_step"])

The names load lazily, so `import tunewise` (and the CLI's start) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tunewise.core.version import __version__

_EXPORTS = {
    "Task": "tunewise.task.config",
    "load_task": "tunewise.task.loading",
    "RunOptions": "tunewise.options",
    "RunResult": "tunewise.run",
    "run_task": "tunewise.run",
    "write_run": "tunewise.records.results",
    "load_run": "tunewise.records.results",
}

if TYPE_CHECKING:
    from tunewise.records.results import load_run, write_run
    from tunewise.run import RunOptions, RunResult, run_task
    from tunewise.task.config import Task
    from tunewise.task.loading import load_task


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tunewise' has no attribute {name!r}")


__all__ = [
    "RunOptions",
    "RunResult",
    "Task",
    "__version__",
    "load_run",
    "load_task",
    "run_task",
    "write_run",
]
