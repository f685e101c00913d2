"""Step 1 of the framework, first rung: the contract's system prompt and the input, nothing else.
With `prompt_file:`, an exported prompt's messages instead (see strategies/prompt_file.py)."""

from __future__ import annotations

from collections.abc import Sequence

from tunewise.core.progress import Progress
from tunewise.inference.predictor import Predictor, PromptPredictor
from tunewise.models.backend import Backend
from tunewise.strategies.zero_shot import ZeroShotCandidate, prompt_file
from tunewise.task.config import Task
from tunewise.task.data import Example


def prepare(
    task: Task,
    spec: ZeroShotCandidate,
    train: Sequence[Example],
    backend: Backend,
    name: str,
    progress: Progress | None = None,
) -> Predictor:
    """No training data is used; the prompt is the contract alone, or the prompt file."""
    if spec.prompt_file is not None:
        return prompt_file.prepare(task, spec.prompt_file, backend, name, spec.strategy)
    return PromptPredictor(name, spec.strategy, backend, task.contract, lambda _: ())
