"""What the framework's decision is made of and says: the measured candidates it weighs, the
gates it passes or fails, and the recommendation with its reasons and next step. Every sentence
that quotes a measured figure carries it as Evidence beside the words, so tools and tests read
the numbers instead of parsing the sentence."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tunewise.core.catalog import family_of, strategy_named
from tunewise.evaluation import MetricValue
from tunewise.task.config import Target


@dataclass(frozen=True)
class CandidateSummary:
    """What the decision needs to know about one measured candidate."""

    name: str
    strategy: str
    quality: MetricValue
    tokens_per_request: float
    latency_p50_ms: float
    setup_seconds: float = 0.0  # demo selection, or training
    compute_seconds_per_request: float = 0.0  # mean wall time per answer on the measuring machine
    setup_usd: float | None = None  # None: not priced (then break-even is in compute seconds)
    per_request_usd: float | None = None
    latency_p95_ms: float = 0.0
    redraws: tuple[float, ...] = ()  # few-shot: the metric per demo draw, on the same examples

    @property
    def family(self) -> str:
        """prompting, retrieval, fine-tuning or hybrid: which step of the framework it is."""
        return family_of(self.strategy)

    @property
    def trains(self) -> bool:
        return strategy_named(self.strategy).trains


@dataclass(frozen=True)
class Evidence:
    """One measured figure a sentence quotes: the candidate's metric with its 95% CI and n,
    rounded as results.json keeps metrics, and the target's minimum where the sentence holds
    the figure against it."""

    candidate: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    target: float | None = None

    @classmethod
    def of(cls, summary: CandidateSummary, metric: str, target: Target | None = None) -> Evidence:
        q = summary.quality
        low, high = round(q.ci_low, 4), round(q.ci_high, 4)
        minimum = target.min if target is not None else None
        return cls(summary.name, metric, round(q.value, 4), low, high, q.n, minimum)


Figures = tuple[Evidence, ...]


@dataclass(frozen=True)
class Gate:
    """One step of the framework: whether it passed, and the numbers that decided it."""

    step: int
    question: str
    passed: bool
    detail: str
    evidence: Figures = ()  # the figures the detail quotes


@dataclass(frozen=True)
class NextStep:
    """What to do next, measured: a sentence, the command to copy, and where the learning curve
    gives one, how many more labelled examples (with its 80% interval)."""

    action: str
    command: str | None = None
    more_examples: int | None = None
    more_examples_interval: tuple[int, int | None] | None = None


@dataclass(frozen=True)
class Recommendation:
    """The chosen candidate (None when no measured candidate meets the target) and why."""

    candidate: str | None
    step: int
    verdict: str  # "meets-target" | "target-missed" | "blocked" (step 3 gate) | "no-target"
    metric: str
    reasons: list[str]
    gates: list[Gate] = field(default_factory=list)
    alternatives: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # what would change the decision
    next_step: NextStep | None = None
    closest: str | None = None  # the chosen candidate, else the best measured one
    closest_step: int | None = None  # the framework step of `closest`'s strategy
    evidence: list[Figures] = field(default_factory=list)  # evidence[i]: what reasons[i] quotes

    def __post_init__(self) -> None:
        # A reason added without figures (replace(r, reasons=[*r.reasons, text])) quotes none.
        missing = len(self.reasons) - len(self.evidence)
        if missing > 0:
            object.__setattr__(self, "evidence", [*self.evidence, *([()] * missing)])

    def with_reason(self, text: str, *figures: Evidence) -> Recommendation:
        """This recommendation with one more reason, and the figures it quotes."""
        reasons, evidence = [*self.reasons, text], [*self.evidence, figures]
        return replace(self, reasons=reasons, evidence=evidence)


class Reasons:
    """Reasons in the making, each sentence with the figures it quotes."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.evidence: list[Figures] = []

    def add(self, text: str, *figures: Evidence) -> None:
        self.texts.append(text)
        self.evidence.append(figures)


def describe(summary: CandidateSummary, metric: str) -> str:
    """'few-shot: accuracy 0.812 (95% CI 0.770-0.850, n=300)'."""
    q = summary.quality
    return (
        f"{summary.name}: {metric} {q.value:.3f} (95% CI {q.ci_low:.3f}-{q.ci_high:.3f}, n={q.n})"
    )


def bar(target: Target, metric: str) -> str:
    """'accuracy >= 0.85', with ' and p95 latency <= 500 ms' when a ceiling is set."""
    latency = f" and p95 latency <= {target.max_latency_ms:.0f} ms" if target.max_latency_ms else ""
    return f"{metric} >= {target.min}{latency}"


def meets(summary: CandidateSummary, target: Target) -> bool:
    """Quality at or above the target, and p95 latency within its ceiling when one is set."""
    fast = target.max_latency_ms is None or summary.latency_p95_ms <= target.max_latency_ms
    return summary.quality.value >= target.min and fast


def cost_order(summary: CandidateSummary) -> tuple[float, float]:
    return (summary.tokens_per_request, summary.latency_p50_ms)


def step_of(strategy: str) -> int:
    """The framework step a strategy belongs to."""
    return strategy_named(strategy).step
