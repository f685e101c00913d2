"""What preparing a candidate cost, in typed parts: training an adapter, building the document
index, searching a prompt, a teacher's labelling. The cost model reads the fields it prices;
each part also keeps the whole record its strategy made, for results.json and the report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


class SetupPart(BaseModel):
    """One part of a candidate's setup. Keys beyond the typed ones are kept as reported."""

    model_config = ConfigDict(extra="allow", frozen=True)

    seconds: float = 0.0

    def record(self) -> dict[str, Any]:
        """The part as its strategy recorded it (no default filled in)."""
        return self.model_dump(exclude_unset=True)


class Training(SetupPart):
    """An adapter's training run (or the cached one it reuses), or a fine-tuning service's job
    (`remote`: its seconds are the job's wall time, not compute here; it bills trained_tokens)."""

    examples: int = 0
    validation_examples: int = 0
    remote: bool = False
    trained_tokens: int = 0


class IndexBuild(SetupPart):
    """Chunking and embedding the task's documents."""


class PromptSearch(SetupPart):
    """optimized-prompt's search: priced by its tokens on an API model, else by its compute."""

    input_tokens: int = 0
    output_tokens: int = 0


class Distillation(SetupPart):
    """A teacher's labelling of the training inputs: priced by the token (API) or compute."""

    teacher: str | None = None
    remote: bool = False
    human_labels: int = 0  # the labels people wrote: only the teacher's demos
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class Setup:
    """Everything a candidate did before its first answer, and what it took."""

    seconds: float = 0.0  # all of it: the setup compute the cost model prices
    training: Training | None = None
    index: IndexBuild | None = None
    search: PromptSearch | None = None
    distillation: Distillation | None = None
    adapter: Path | None = None  # the trained adapter's folder; the run keeps a copy

    def record(self, adapter: str | None = None) -> dict[str, Any]:
        """results.json's `setup`: the seconds, each part's record, and where the run keeps
        the adapter (`adapter`, relative to the run folder)."""
        document: dict[str, Any] = {"seconds": self.seconds}
        for name in ("training", "index", "search", "distillation"):
            part: SetupPart | None = getattr(self, name)
            if part is not None:
                document[name] = part.record()
        if self.adapter is not None and adapter is not None:
            document["adapter"] = adapter
        return document
