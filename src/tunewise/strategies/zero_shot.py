"""Step 1 of the framework, first rung: the contract's system prompt and the input, nothing else."""

from __future__ import annotations

from collections.abc import Sequence

from tunewise.candidates import ZeroShotCandidate
from tunewise.data import Example
from tunewise.models.backend import Backend
from tunewise.progress import Progress
from tunewise.strategies.predictor import PromptPredictor
from tunewise.task import Task


def prepare(
    task: Task,
    spec: ZeroShotCandidate,
    train: Sequence[Example],
    backend: Backend,
    name: str,
    progress: Progress | None = None,
) -> PromptPredictor:
    """No training data is used; the prompt is the contract alone."""
    return PromptPredictor(name, spec.strategy, backend, task.contract, lambda _: ())
