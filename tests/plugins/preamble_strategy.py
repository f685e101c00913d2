"""A third-party strategy in one file: the zero-shot prompt with the user's preamble before the
contract's objective. Registered by the entry point in tunewise_preamble-0.1.dist-info."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from tunewise.core.catalog import Strategy
from tunewise.core.specs import CandidateSpec

if TYPE_CHECKING:
    from tunewise.inference.predictor import PromptPredictor
    from tunewise.models.backend import Backend
    from tunewise.task.config import Task
    from tunewise.task.data import Example


class PreambleCandidate(CandidateSpec):
    strategy: Literal["preamble"]
    preamble: str = "Answer in one word."


def prepare(
    task: Task,
    spec: PreambleCandidate,
    train: Sequence[Example],
    backend: Backend,
    name: str,
    progress: object = None,
) -> PromptPredictor:
    from tunewise.inference.predictor import PromptPredictor

    objective = f"{spec.preamble} {task.contract.objective}"
    contract = task.contract.model_copy(update={"objective": objective})
    return PromptPredictor(
        name, spec.strategy, backend, contract, lambda _: (), params={"preamble": spec.preamble}
    )


STRATEGY = Strategy(
    "preamble", "prompting", PreambleCandidate, prepare, "zero-shot with a preamble", "Low"
)
