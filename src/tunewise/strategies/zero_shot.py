"""Step 1 of the framework, first rung: the contract's system prompt and the input, nothing else."""

from __future__ import annotations

from collections.abc import Sequence

from tunewise.measuring.progress import Progress
from tunewise.models.backend import Backend
from tunewise.strategies.predictor import PromptPredictor
from tunewise.strategies.specs import ZeroShotCandidate
from tunewise.task.config import Task
from tunewise.task.data import Example


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
