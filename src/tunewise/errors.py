"""One error family for everything a user can fix: bad task files, bad data, missing packages."""

from __future__ import annotations


class TunewiseError(Exception):
    """A problem the user can act on; the CLI prints it as one line and exits with code 2."""


class TaskError(TunewiseError):
    """task.yaml is malformed: names the file, line and key."""


class DataError(TunewiseError):
    """A data file is malformed: names the file, line and field."""

    def __init__(self, path: object, line: int | None, field: str | None, problem: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        what = f" field '{field}':" if field else ""
        super().__init__(f"{where}:{what} {problem}")
        self.path, self.line, self.field, self.problem = path, line, field, problem


class ModelError(TunewiseError):
    """A model cannot be found or loaded; says how to install it."""


class CandidateSkipped(TunewiseError):
    """The candidate cannot run on this machine (e.g. QLoRA without CUDA); recorded, not fatal."""
