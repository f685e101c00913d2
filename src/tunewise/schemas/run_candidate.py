"""One candidate of results.json as read back: typed, frozen, every block the schema documents.

Fields mirror schemas/results.schema.json (`$defs.candidate`) by name. What older files lack is
None (or empty); the readers decide what to show for it. Open blocks (params, the training record,
the index part of setup) stay as the JSON has them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MetricRecord:
    """A quality figure with its seeded bootstrap 95% CI and sample size."""

    value: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class UsageRecord:
    """Per request, as measured: mean tokens and latency percentiles."""

    input_tokens_per_request: float | None = None
    output_tokens_per_request: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    estimated_token_counts: int | None = None


@dataclass(frozen=True)
class PricedRecord:
    """A cost in USD (None: unpriced), its basis and its formula in words."""

    usd: float | None = None
    basis: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class CostRecord:
    """The cost model's figures. Files written before prices existed have only
    compute_seconds_per_request: then per_request is None, and so are the rest."""

    per_request: PricedRecord | None = None
    per_1000_requests_usd: float | None = None
    setup: PricedRecord | None = None
    monthly_usd: float | None = None
    horizon_usd: float | None = None
    compute_seconds_per_request: float | None = None
    setup_seconds: float | None = None


@dataclass(frozen=True)
class RungRecord:
    examples: int
    score: float


@dataclass(frozen=True)
class TrialRecord:
    """One prompt-search trial (or the winner: then score and examples are its last rung's)."""

    trial: int | None = None
    instruction: str | None = None
    demos: str | None = None
    demo_ids: tuple[str, ...] | None = None  # None: similar demos, chosen per input
    rungs: tuple[RungRecord, ...] = ()
    score: float | None = None
    examples: int | None = None


@dataclass(frozen=True)
class ProposerRecord:
    model: str | None = None
    asked: int | None = None
    kept: int | None = None


@dataclass(frozen=True)
class SearchRecord:
    """optimized-prompt: the prompt search on a validation slice of train."""

    metric: str | None = None
    validation_examples: int | None = None
    pool_examples: int | None = None
    proposer: ProposerRecord | None = None
    trials: tuple[TrialRecord, ...] = ()
    winner: TrialRecord | None = None
    prompt: str | None = None
    requests: int | None = None
    calls: int | None = None
    seconds: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class DistillationRecord:
    """A student's teacher: who labelled the inputs, what was kept and what it cost."""

    teacher: str | None = None
    remote: bool = False
    prompt: str | None = None
    k: int | None = None
    min_confidence: float | None = None
    inputs: str | None = None
    asked: int | None = None
    kept: int | None = None
    dropped_invalid: int | None = None
    dropped_low_confidence: int | None = None
    human_labels: int | None = None
    agreement_with_human: MetricRecord | None = None
    requests: int | None = None
    calls: int | None = None
    seconds: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class SetupRecord:
    """What setting the candidate up took: seconds, and each part's record."""

    seconds: float | None = None
    training: Mapping[str, Any] | None = None  # the training record, as the trainer wrote it
    adapter: str | None = None  # the adapter's folder inside the run folder
    index: Mapping[str, Any] | None = None
    search: SearchRecord | None = None
    distillation: DistillationRecord | None = None


@dataclass(frozen=True)
class FreshnessRecord:
    """Answers to the questions a document update changed."""

    examples: int | None = None
    retrieves_updated_documents: bool = False
    metrics: Mapping[str, MetricRecord] = field(default_factory=dict)


@dataclass(frozen=True)
class SpreadRecord:
    min: float
    max: float
    std: float


@dataclass(frozen=True)
class ConsistencyRecord:
    """Few-shot demo re-draws: the metric per draw, its spread and the answers' agreement."""

    metric: str | None = None
    redraws: int | None = None
    examples: int | None = None
    draws: tuple[float, ...] = ()
    spread: SpreadRecord | None = None
    agreement: MetricRecord | None = None
    format_validity: MetricRecord | None = None  # written by early versions


@dataclass(frozen=True)
class FlakyExampleRecord:
    example_id: str
    flakiness: float


@dataclass(frozen=True)
class FlakinessRecord:
    """--repeats: sampled answers per example and how often they disagree."""

    repeats: int | None = None
    temperature: float | None = None
    examples: int | None = None
    metric: str | None = None
    quality: tuple[float, ...] = ()
    flaky_examples: MetricRecord | None = None
    mean_flakiness: float | None = None
    most_flaky: tuple[FlakyExampleRecord, ...] = ()


@dataclass(frozen=True)
class RepairRecord:
    """The validation and repair loop of generated answers."""

    max_repairs: int = 0
    invalid_before: int = 0
    repaired: int = 0
    still_invalid: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class ClassRecord:
    precision: float = 0.0
    recall: float = 0.0
    f1: float = 0.0
    support: int = 0
    predicted: int = 0


@dataclass(frozen=True)
class ConfusionRecord:
    """Label tasks: reference labels (rows) against predicted labels (columns)."""

    labels: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    matrix: tuple[tuple[int, ...], ...] = ()
    per_class: Mapping[str, ClassRecord] = field(default_factory=dict)


@dataclass(frozen=True)
class JudgeUsageRecord:
    """A judge's requests (cached ones included), fresh calls, tokens and compute seconds."""

    requests: int = 0
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class PositionsRecord:
    first_position_rate: float
    order_consistency: float
    pairs: int


@dataclass(frozen=True)
class CandidateJudgeRecord:
    """The model judge's work on one candidate's answers."""

    mode: str | None = None
    usage: JudgeUsageRecord = JudgeUsageRecord()
    cost: PricedRecord | None = None
    positions: PositionsRecord | None = None


@dataclass(frozen=True)
class SequentialRecord:
    """Measured in rounds by the ladder: where it stopped and why (see results.schema.json)."""

    n: int
    planned: int
    looks: int
    confidence: float
    reason: str  # above the target | below the target | sample exhausted | budget spent


@dataclass(frozen=True)
class CandidateRecord:
    """One candidate: measured (metrics, usage, setup, cost and the optional blocks) or skipped
    (skipped_reason)."""

    name: str
    strategy: str = ""
    family: str | None = None  # prompting | retrieval | fine-tuning | hybrid
    trains: bool = False
    effort: str | None = None
    model: str | None = None
    status: str | None = None  # measured | skipped; see `measured` for files without it
    skipped_reason: str | None = None
    model_fingerprint: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, MetricRecord] = field(default_factory=dict)
    usage: UsageRecord = UsageRecord()
    setup: SetupRecord = SetupRecord()
    cost: CostRecord | None = None
    freshness: FreshnessRecord | None = None
    sequential: SequentialRecord | None = None
    consistency: ConsistencyRecord | None = None
    flakiness: FlakinessRecord | None = None
    repair: RepairRecord | None = None
    confusion: ConfusionRecord | None = None
    judge: CandidateJudgeRecord | None = None
    label_scoring: str | None = None  # label tasks: likelihood | constrained | first-token | parsed
    label_scoring_answers: Mapping[str, int] = field(default_factory=dict)  # answers per method

    @property
    def measured(self) -> bool:
        """Runs written before the status field had only measured candidates."""
        if self.status is None:
            return bool(self.metrics)
        return self.status == "measured"
