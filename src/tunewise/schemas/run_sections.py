"""The run-level sections of results.json as read back: the decision, the ladder's walk, the
learning curve, documents, datasets, risk checks, languages and the judge.

Fields mirror schemas/results.schema.json by name; what older files lack is None or empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tunewise.schemas.run_candidate import JudgeUsageRecord, MetricRecord, PricedRecord


@dataclass(frozen=True)
class EvidenceRecord:
    """One measured figure a sentence of the decision quotes: the candidate's metric with its
    95% CI and n (as in its `metrics`), and the target it was held against, where it was."""

    candidate: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    target: float | None = None


@dataclass(frozen=True)
class GateRecord:
    step: int | None = None
    question: str = ""
    passed: bool = False
    detail: str = ""
    evidence: tuple[EvidenceRecord, ...] = ()


@dataclass(frozen=True)
class NextStepRecord:
    action: str
    command: str | None = None
    more_examples: int | None = None
    more_examples_interval: tuple[int | None, ...] | None = None


@dataclass(frozen=True)
class RecommendationRecord:
    """The decision: the candidate (None: none meets the target), its step and why."""

    candidate: str | None = None
    step: int | None = None
    verdict: str | None = None
    metric: str | None = None
    reasons: tuple[str, ...] = ()
    evidence: tuple[tuple[EvidenceRecord, ...], ...] = ()  # evidence[i]: what reasons[i] quotes
    gates: tuple[GateRecord, ...] = ()
    alternatives: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()
    next_step: NextStepRecord | None = None
    closest: str | None = None
    closest_step: int | None = None

    def explained(self) -> list[tuple[str, tuple[EvidenceRecord, ...]]]:
        """Each reason with the figures it quotes (none for a reason recorded without any,
        and for every reason of a run written before evidence was recorded)."""
        missing = max(0, len(self.reasons) - len(self.evidence))
        return list(zip(self.reasons, (*self.evidence, *([()] * missing)), strict=False))


@dataclass(frozen=True)
class BreakEvenRecord:
    """When a fine-tuned candidate's extra setup is repaid (requests, months: None is never)."""

    tuned: str | None = None
    prompt: str | None = None
    basis: str | None = None
    requests: float | None = None
    months: float | None = None
    within_horizon: bool = False
    detail: str | None = None


@dataclass(frozen=True)
class LadderStepRecord:
    step: int
    title: str
    status: str  # run | skipped | not run: budget | stopped
    reason: str = ""
    candidates: tuple[str, ...] = ()
    seconds: float = 0.0
    estimated_seconds: float | None = None
    command: str | None = None


@dataclass(frozen=True)
class ReductionRecord:
    step: int
    candidate: str
    setting: str
    before: int
    after: int
    reason: str = ""


@dataclass(frozen=True)
class PlannedStepRecord:
    """One step of the plan the ladder started from, and (once run) its estimate for the work
    its candidates did beside the compute they recorded."""

    step: int
    title: str
    runs: str = ""
    smallest_seconds: float = 0.0
    full_seconds: float = 0.0
    stops_if: str = ""
    estimated_seconds: float | None = None
    actual_seconds: float | None = None
    smallest_usd: float | None = None
    full_usd: float | None = None


@dataclass(frozen=True)
class LadderPlanRecord:
    steps: tuple[PlannedStepRecord, ...] = ()


@dataclass(frozen=True)
class LadderRecord:
    """The default run's walk up the four steps, as results.json keeps it."""

    budget_seconds: float | None = None
    steps: tuple[LadderStepRecord, ...] = ()
    reductions: tuple[ReductionRecord, ...] = ()
    stopped: str | None = None
    seconds: float = 0.0
    compute_seconds: float = 0.0
    plan: LadderPlanRecord | None = None


@dataclass(frozen=True)
class CurvePointRecord:
    examples: int
    value: float
    ci_low: float
    ci_high: float
    n: int | None = None


@dataclass(frozen=True)
class CurveRecord:
    """--learning-curve: quality against training examples and the fitted saturating curve
    (fit parameters are None when too few sizes were measured to fit)."""

    candidate: str | None = None
    metric: str | None = None
    ceiling: float | None = None
    scale: float | None = None
    rate: float | None = None
    points: tuple[CurvePointRecord, ...] = ()
    target: float | None = None
    examples_needed: int | None = None
    examples_needed_low: int | None = None
    examples_needed_high: int | None = None
    reachable: str | None = None
    summary: str | None = None
    ceiling_low: float | None = None
    ceiling_high: float | None = None


@dataclass(frozen=True)
class UpdatesRecord:
    hash: str | None = None
    documents: int | None = None
    changed_documents: tuple[str, ...] = ()
    questions: int | None = None
    index: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class DocumentsRecord:
    hash: str | None = None
    documents: int | None = None
    index: Mapping[str, Any] | None = None  # the index settings and build, as written
    updates: UpdatesRecord | None = None


@dataclass(frozen=True)
class DatasetDataRecord:
    hash: str | None = None
    train_examples: int | None = None
    test_examples: int | None = None


@dataclass(frozen=True)
class DatasetRecord:
    """One of the task's datasets (main first) and each candidate's metrics there."""

    name: str
    data: DatasetDataRecord = DatasetDataRecord()
    candidates: Mapping[str, Mapping[str, MetricRecord]] = field(default_factory=dict)


@dataclass(frozen=True)
class ChecksRecord:
    """tunewise check's findings; the per-check blocks stay as `tunewise check --out` wrote
    them."""

    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    task: Any = None
    examples: Any = None
    characters: Any = None
    tokenization: Any = None
    languages: Any = None


@dataclass(frozen=True)
class InLanguageRecord:
    rate: MetricRecord | None = None  # None: no answer carries a language to tell
    undetermined: int = 0
    expected_unknown: int = 0


@dataclass(frozen=True)
class LanguageRowRecord:
    score: MetricRecord
    n: int | None = None
    in_expected_language: InLanguageRecord = InLanguageRecord()


@dataclass(frozen=True)
class LargestDropRecord:
    language: str
    drop: float


@dataclass(frozen=True)
class DropRecord:
    best: str | None = None
    drops: Mapping[str, float] = field(default_factory=dict)
    largest: LargestDropRecord | None = None


@dataclass(frozen=True)
class LanguageDriftRecord:
    languages: Mapping[str, LanguageRowRecord] = field(default_factory=dict)
    in_expected_language: InLanguageRecord = InLanguageRecord()
    drop: DropRecord | None = None


@dataclass(frozen=True)
class LanguagesRecord:
    """Multilingual drift: per candidate, quality per input language."""

    metric: str | None = None
    source: str | None = None
    expected_answer_language: str | None = None
    trained_languages: Mapping[str, float] | None = None
    candidates: Mapping[str, LanguageDriftRecord] = field(default_factory=dict)


@dataclass(frozen=True)
class CalibrationRecord:
    source: str | None = None
    spearman: MetricRecord | None = None
    accuracy: MetricRecord | None = None
    usage: JudgeUsageRecord = field(default_factory=JudgeUsageRecord)
    warning: str | None = None


@dataclass(frozen=True)
class SelfConsistencyRecord:
    agreement: MetricRecord
    samplings: int | None = None


@dataclass(frozen=True)
class JudgeRecord:
    """The model judge: its settings, calibration or self-consistency, and what it cost."""

    model: str | None = None
    mode: str | None = None
    rubric: tuple[str, ...] = ()
    scale: int | None = None
    baseline: str | None = None
    reference_shown: bool = False
    calibration: CalibrationRecord | None = None
    self_consistency: SelfConsistencyRecord | None = None
    remote: bool = False
    usage: JudgeUsageRecord = field(default_factory=JudgeUsageRecord)
    cost: PricedRecord | None = None
