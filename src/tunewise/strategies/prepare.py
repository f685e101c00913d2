"""One way to build a candidate: its strategy's prepare, the run's document index for the
strategies that retrieve, and the output format's grammar when decoding is constrained."""

from __future__ import annotations

from collections.abc import Sequence

from tunewise.core.catalog import strategy_named
from tunewise.core.progress import Progress
from tunewise.core.specs import CandidateSpec
from tunewise.errors import CandidateSkipped
from tunewise.inference.predictor import Predictor
from tunewise.models.backend import Backend
from tunewise.models.constrained import ConstrainedModel, grammar_for
from tunewise.models.local import LocalModel
from tunewise.retrieval.index import Index
from tunewise.task.config import Task
from tunewise.task.data import Example


def prepare_candidate(
    task: Task,
    spec: CandidateSpec,
    *,
    train: Sequence[Example],
    backend: Backend,
    name: str,
    progress: Progress | None = None,
    index: Index | None = None,
) -> Predictor:
    """The candidate ready to answer (training or searching first where its strategy does)."""
    strategy = strategy_named(spec.strategy)
    extra = {"index": index} if strategy.retrieves else {}
    predictor: Predictor = strategy.prepare_function()(
        task, spec, train, backend, name, progress, **extra
    )
    if spec.decoding == "constrained":
        predictor.backend = constrained(predictor.backend, task, name)
    return predictor


def constrained(backend: Backend, task: Task, name: str) -> ConstrainedModel:
    """The candidate's model with generation masked to the output format's grammar."""
    if not isinstance(backend, LocalModel):
        raise CandidateSkipped(
            f"{name}: decoding: constrained masks a local model's logits; '{backend.spec}' is "
            "answered by a server"
        )
    grammar = grammar_for(task.contract.output_format)
    assert grammar is not None  # the task validator allows constrained only with a shape
    return ConstrainedModel(backend, grammar)
