"""results.json read back as typed, frozen records: the one reader the report, the viewer, the
regression gate, the trackers and export share.

`read_run` takes a run folder, the results.json path, or the parsed document. It reads every
results.json a ledger may hold: a field that older versions did not write takes its default (None,
or empty), never a KeyError. A field with the wrong type is a TunewiseError naming the file and the
field's path. Fields mirror schemas/results.schema.json by name; run_candidate.py holds a
candidate's records and run_sections.py the run-level sections.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.errors import TunewiseError
from tunewise.schemas.from_json import build
from tunewise.schemas.run_candidate import CandidateRecord, MetricRecord
from tunewise.schemas.run_sections import (
    BreakEvenRecord,
    ChecksRecord,
    CurveRecord,
    DatasetRecord,
    DocumentsRecord,
    JudgeRecord,
    LadderRecord,
    LanguagesRecord,
    RecommendationRecord,
)


@dataclass(frozen=True)
class TargetRecord:
    metric: str
    min: float
    max_latency_ms: float | None = None


@dataclass(frozen=True)
class TaskUsageRecord:
    requests_per_month: int | None = None
    horizon_months: int | None = None


@dataclass(frozen=True)
class TaskRecord:
    """The task as the run used it: name, file hash, output format, target and usage."""

    name: str | None = None
    hash: str | None = None
    output_format: str | None = None  # label | json | text
    target: TargetRecord | None = None
    usage: TaskUsageRecord = TaskUsageRecord()
    max_new_tokens: int | None = None


@dataclass(frozen=True)
class DataRecord:
    hash: str | None = None
    train_examples: int | None = None
    test_examples: int | None = None  # evaluated, after --limit
    test_examples_available: int | None = None
    test_source: str | None = None
    leaked_test_inputs: int | None = None
    limit: int | None = None


@dataclass(frozen=True)
class MachineRecord:
    """What the speed figures were measured on."""

    platform: str | None = None
    processor: str | None = None
    cpus: int | None = None
    python: str | None = None
    torch: str | None = None


@dataclass(frozen=True)
class RunRecord:
    """One results.json."""

    run_id: str
    schema_version: int | None = None
    created_at: str | None = None
    code_version: str | None = None
    task: TaskRecord = TaskRecord()
    seed: int | None = None
    data: DataRecord = DataRecord()
    machine: MachineRecord = MachineRecord()
    seconds: float | None = None
    candidates: tuple[CandidateRecord, ...] = ()
    break_even: tuple[BreakEvenRecord, ...] = ()
    recommendation: RecommendationRecord | None = None
    ladder: LadderRecord | None = None
    learning_curve: CurveRecord | None = None
    documents: DocumentsRecord | None = None
    datasets: tuple[DatasetRecord, ...] = ()
    macro: Mapping[str, Mapping[str, float]] | None = None
    checks: ChecksRecord | None = None
    languages: LanguagesRecord | None = None
    judge: JudgeRecord | None = None
    source: str = field(default="results.json", compare=False)  # the file it was read from

    def candidate(self, name: str) -> CandidateRecord | None:
        return next((c for c in self.candidates if c.name == name), None)

    def measured(self) -> list[CandidateRecord]:
        return [c for c in self.candidates if c.measured]

    def primary_metric(self) -> str | None:
        """The target metric when the candidates report it (else the recommendation's), else
        the first metric measured."""
        names = list(dict.fromkeys(name for c in self.measured() for name in c.metrics))
        chosen = self.task.target.metric if self.task.target else None
        if not chosen and self.recommendation:
            chosen = self.recommendation.metric
        return chosen if chosen in names else (names[0] if names else None)


def read_run(source: str | os.PathLike[str] | Mapping[str, Any] | RunRecord) -> RunRecord:
    """A run's results.json as a RunRecord: from a runs/<run-id> folder, the file, or the
    document already parsed (a RunRecord is returned as it is)."""
    if isinstance(source, RunRecord):
        return source
    if isinstance(source, Mapping):
        return _record(source, "results.json")
    path = Path(source)
    if path.suffix != ".json":  # a run folder
        path = path / "results.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TunewiseError(f"{path}: no such file; pass a runs/<run-id> folder") from None
    except json.JSONDecodeError as exc:
        raise TunewiseError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TunewiseError(f"{path}: cannot be read ({exc})") from None
    return _record(document, str(path))


def read_candidate(document: Mapping[str, Any], source: str = "results.json") -> CandidateRecord:
    """One candidate entry (of results.json, or a ledger row of the same fields)."""
    return build(CandidateRecord, document, source)


def read_metric(document: Mapping[str, Any], source: str = "results.json") -> MetricRecord:
    return build(MetricRecord, document, source)


def _record(document: Any, source: str) -> RunRecord:
    if not isinstance(document, Mapping):
        raise TunewiseError(f"{source}: expected a JSON object at the top level")
    return build(RunRecord, {**document, "source": source}, source)
