"""A run's documents: their index, and for the freshness probe the patched collection's index
and the questions the patch changed. Indexes are built only when a candidate retrieves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tunewise.core.progress import Progress
from tunewise.home import tunewise_home
from tunewise.retrieval.documents import apply_patch, documents_hash, load_documents
from tunewise.retrieval.index import Index, build_index
from tunewise.task.config import Task
from tunewise.task.data import Example, read_examples


@dataclass(frozen=True)
class Knowledge:
    """The documents as given and, with data.updates, after the patch."""

    documents: int
    hash: str
    index: Index | None  # None when no candidate retrieves
    updated_documents: int | None = None
    updated_hash: str | None = None
    updated: Index | None = None
    changed: tuple[str, ...] = ()  # document ids the patch replaced, added or removed
    questions: tuple[Example, ...] = ()


def load_knowledge(task: Task, retrieving: bool, progress: Progress) -> Knowledge:
    """Read (and, when a candidate retrieves, index) the documents; with an update patch, also
    the patched collection, whose index re-embeds only the chunks of changed documents."""
    if task.data.documents is None:
        raise ValueError("the task has no documents")
    home = tunewise_home()

    def index(documents: list, stage: str) -> Index | None:
        if not retrieving:
            return None
        return build_index(documents, task.retrieval, home, stage=_stage(progress, stage))

    documents = load_documents(task.data.documents)
    given = (len(documents), documents_hash(documents), index(documents, "index"))
    updates = task.data.updates
    if updates is None:
        return Knowledge(*given)
    patched, changed = apply_patch(documents, updates.documents)
    questions = read_examples(updates.questions, task.contract.output_format)
    return Knowledge(
        *given,
        len(patched),
        documents_hash(patched),
        index(patched, "index update"),
        tuple(changed),
        tuple(questions),
    )


def _stage(progress: Progress, description: str) -> Callable[[int], Callable[[int], None]]:
    return lambda total: progress.stage(description, total)
