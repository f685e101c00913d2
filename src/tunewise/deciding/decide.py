"""The four-step framework as explicit gates over measured results (pure; never runs a model).

The gates: step 1 (prompting), step 2 (RAG, when measured), step 3 (fine-tuning: quality,
examples, and break-even in measured compute against the cheapest prompting or RAG candidate) and
step 4 (a fine-tuned model with RAG, under the same justification when it is the cheapest tuned
candidate that meets the target); otherwise which step the numbers point to next.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from tunewise.deciding.costs import break_even_requests
from tunewise.evaluation import MetricValue
from tunewise.strategies.catalog import family_of, strategy_named
from tunewise.task.config import Target

MIN_FINE_TUNING_EXAMPLES = 500


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
class Gate:
    """One step of the framework: whether it passed, and the numbers that decided it."""

    step: int
    question: str
    passed: bool
    detail: str


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


def describe(summary: CandidateSummary, metric: str) -> str:
    """'few-shot: accuracy 0.812 (95% CI 0.770-0.850, n=300)'."""
    q = summary.quality
    return (
        f"{summary.name}: {metric} {q.value:.3f} (95% CI {q.ci_low:.3f}-{q.ci_high:.3f}, n={q.n})"
    )


def _bar(target: Target, metric: str) -> str:
    """'accuracy >= 0.85', with ' and p95 latency <= 500 ms' when a ceiling is set."""
    latency = f" and p95 latency <= {target.max_latency_ms:.0f} ms" if target.max_latency_ms else ""
    return f"{metric} >= {target.min}{latency}"


def meets(summary: CandidateSummary, target: Target) -> bool:
    """Quality at or above the target, and p95 latency within its ceiling when one is set."""
    fast = target.max_latency_ms is None or summary.latency_p95_ms <= target.max_latency_ms
    return summary.quality.value >= target.min and fast


def _cost_order(summary: CandidateSummary) -> tuple[float, float]:
    return (summary.tokens_per_request, summary.latency_p50_ms)


def step_of(strategy: str) -> int:
    """The framework step a strategy belongs to."""
    return strategy_named(strategy).step


def fragile(summary: CandidateSummary, metric: str) -> str | None:
    """Why a prompting result is fragile: its demo redraws move the metric by more than the
    width of its own 95% CI (so which demos were drawn decides more than the data can tell)."""
    if len(summary.redraws) < 2:
        return None
    low, high = min(summary.redraws), max(summary.redraws)
    width = summary.quality.ci_high - summary.quality.ci_low
    if high - low <= width:
        return None
    return (
        f"{summary.name} is fragile: re-drawn demo sets move {metric} from {low:.3f} to "
        f"{high:.3f} ({high - low:.3f}), more than its own 95% CI width ({width:.3f}); the "
        "prompting result depends on which demos were drawn."
    )


def decide(
    candidates: Sequence[CandidateSummary],
    target: Target | None,
    metric: str,
    *,
    train_examples: int,
    has_documents: bool,
    min_examples: int = MIN_FINE_TUNING_EXAMPLES,
    learning_curve: str | None = None,
    requests_per_month: int = 0,
    horizon_months: int = 12,
) -> Recommendation:
    """The framework's decision (see _decide), with fragile prompting results flagged in the
    reasons and in step 1's gate."""
    recommendation = _decide(
        candidates, target, metric, train_examples=train_examples, has_documents=has_documents,
        min_examples=min_examples, learning_curve=learning_curve,
        requests_per_month=requests_per_month, horizon_months=horizon_months,
    )  # fmt: skip
    best = max(candidates, key=lambda c: (c.quality.value, -c.tokens_per_request))
    closest = next((c for c in candidates if c.name == recommendation.candidate), best)
    recommendation = replace(
        recommendation, closest=closest.name, closest_step=step_of(closest.strategy)
    )
    flags = [f for f in (fragile(c, metric) for c in candidates if c.family == "prompting") if f]
    if not flags:
        return recommendation
    gates = [
        replace(g, detail=f"{g.detail}; " + " ".join(flags)) if g.step == 1 else g
        for g in recommendation.gates
    ]
    return replace(recommendation, reasons=[*recommendation.reasons, *flags], gates=gates)


def _decide(
    candidates: Sequence[CandidateSummary],
    target: Target | None,
    metric: str,
    *,
    train_examples: int,
    has_documents: bool,
    min_examples: int = MIN_FINE_TUNING_EXAMPLES,
    learning_curve: str | None = None,
    requests_per_month: int = 0,
    horizon_months: int = 12,
) -> Recommendation:
    """Step 1: the cheapest prompting candidate that meets the target wins. Step 3: else a
    fine-tuned candidate that meets it, with enough examples, whose training pays for itself
    within the horizon. Otherwise no recommendation, and what to try next."""
    if not candidates:
        raise ValueError("nothing to decide: no candidate was measured")
    ranked = sorted(candidates, key=lambda c: (-c.quality.value, *_cost_order(c)))
    alternatives = [describe(c, metric) for c in ranked]
    if target is None:
        best = ranked[0]
        reasons = [
            "No target is set, so no candidate can be said to be good enough; "
            f"the best measured is {describe(best, metric)}.",
            "Set `target: {metric: ..., min: ...}` in task.yaml to get a decision.",
        ]
        return Recommendation(best.name, 1, "no-target", metric, reasons, [], alternatives)
    prompting = [c for c in candidates if c.family == "prompting"]
    meeting = sorted((c for c in prompting if meets(c, target)), key=_cost_order)
    gate = Gate(
        1,
        "Does a prompting candidate meet the target?",
        bool(meeting),
        f"target {_bar(target, metric)}; " + "; ".join(describe(c, metric) for c in prompting),
    )
    tuned = sorted(
        (c for c in candidates if c.trains and meets(c, target)),
        key=_cost_order,
    )
    if meeting:
        won = _prompting_wins(meeting, target, metric, [gate], alternatives)
        won.changes.extend(_when_tuning_pays(tuned, meeting, horizon_months))
        return won
    gates = [gate]
    retrieving = [c for c in candidates if c.family == "retrieval"]
    if retrieving:
        with_rag = sorted((c for c in retrieving if meets(c, target)), key=_cost_order)
        gate = Gate(
            2,
            "Does prompting with retrieved documents (RAG) meet the target?",
            bool(with_rag),
            f"target {_bar(target, metric)}; " + "; ".join(describe(c, metric) for c in retrieving),
        )
        gates.append(gate)
        if with_rag:
            won = _prompting_wins(with_rag, target, metric, gates, alternatives, step=2)
            won.changes.extend(_when_tuning_pays(tuned, with_rag, horizon_months))
            return won
    prompting = prompting + retrieving  # the rivals fine-tuning must beat on cost
    if tuned:
        volume = (requests_per_month, horizon_months)
        if tuned[0].family == "hybrid":
            gates.append(_hybrid_parts(tuned[0], candidates, metric))
        gated = _fine_tuning_gate(
            tuned[0],
            prompting,
            target,
            metric,
            gates,
            alternatives,
            train_examples,
            min_examples,
            volume,
        )
        if gated.verdict == "blocked" and train_examples < min_examples and learning_curve:
            gated.reasons.append(f"Learning curve: {learning_curve}")
            gated.changes.append(
                f"More training examples, per the learning curve: {learning_curve}"
            )
        return gated
    missed = _target_missed(
        ranked, target, metric, gates, alternatives, train_examples, has_documents, min_examples
    )
    if learning_curve:  # how many examples would close the gap, from the measured curve
        missed.reasons.append(f"Learning curve: {learning_curve}")
        missed.changes.append(f"More training examples, per the learning curve: {learning_curve}")
    return missed


def _when_tuning_pays(
    tuned: Sequence[CandidateSummary], winners: Sequence[CandidateSummary], horizon_months: int
) -> list[str]:
    """The volume above which a fine-tuned candidate that also meets the target would cost less
    over the horizon than the recommended prompting one."""
    if not tuned:
        return []
    rival, requests = break_even(tuned[0], winners[:1])
    if not math.isfinite(requests):
        return []
    monthly = math.ceil(requests / horizon_months)
    return [
        f"Above {monthly:,} requests/month, {tuned[0].name} (fine-tuned, also meets the target) "
        f"would pay for its setup within {horizon_months} months against {rival}."
    ]


def _prompting_wins(
    meeting: list[CandidateSummary],
    target: Target,
    metric: str,
    gates: list[Gate],
    alternatives: list[str],
    step: int = 1,
) -> Recommendation:
    best = meeting[0]
    how = "Prompting" if step == 1 else "Prompting with retrieved documents (RAG)"
    reasons = [
        f"{how} meets the target: {describe(best, metric)} >= {target.min}.",
        f"It is the cheapest candidate that does, at {best.tokens_per_request:.0f} tokens "
        f"and {best.latency_p50_ms:.0f} ms (p50) per request; stop here (step {step}).",
    ]
    if best.quality.ci_low < target.min:
        reasons.append(
            f"Its 95% CI ({best.quality.ci_low:.3f}-{best.quality.ci_high:.3f}) straddles the "
            "target: more test examples would make this certain."
        )
    return Recommendation(best.name, step, "meets-target", metric, reasons, gates, alternatives)


def _hybrid_parts(
    hybrid: CandidateSummary, candidates: Sequence[CandidateSummary], metric: str
) -> Gate:
    """Step 4's claim, checked: the hybrid beats the best of each of its parts (RAG alone and
    the fine-tuned model alone) on the point estimate; the detail gives both for the reader."""
    parts = []
    for family in ("retrieval", "fine-tuning"):
        measured = [c for c in candidates if c.family == family]
        if measured:
            parts.append(max(measured, key=lambda c: c.quality.value))
    beats = all(hybrid.quality.value > part.quality.value for part in parts)
    detail = "; ".join(describe(c, metric) for c in [hybrid, *parts])
    if not parts:
        detail += "; neither part was measured alone"
    return Gate(4, "Does the hybrid beat both its parts?", beats and bool(parts), detail)


def break_even(tuned: CandidateSummary, rivals: Sequence[CandidateSummary]) -> tuple[str, float]:
    """(the cheapest rival per request, requests after which the tuned candidate's setup has
    paid for itself against it): in dollars when every price is known, else in measured compute
    seconds, which are always there."""
    priced = [tuned, *rivals]
    if all(c.setup_usd is not None and c.per_request_usd is not None for c in priced):
        rival = min(rivals, key=lambda c: c.per_request_usd or 0.0)
        requests = break_even_requests(
            tuned.setup_usd or 0.0,
            tuned.per_request_usd or 0.0,
            rival.setup_usd or 0.0,
            rival.per_request_usd or 0.0,
        )
        return rival.name, requests
    rival = min(rivals, key=lambda c: c.compute_seconds_per_request)
    requests = break_even_requests(
        tuned.setup_seconds,
        tuned.compute_seconds_per_request,
        rival.setup_seconds,
        rival.compute_seconds_per_request,
    )
    return rival.name, requests


def _fine_tuning_gate(
    best: CandidateSummary,
    prompting: list[CandidateSummary],
    target: Target,
    metric: str,
    gates: list[Gate],
    alternatives: list[str],
    train_examples: int,
    min_examples: int,
    volume: tuple[int, int],
) -> Recommendation:
    requests_per_month, horizon_months = volume
    enough = train_examples >= min_examples
    step = step_of(best.strategy)
    rag_measured = any(gate.step == 2 for gate in gates)
    missing = "Prompting and RAG miss" if rag_measured else "Prompting misses"
    how = "a fine-tuned model with RAG" if step == 4 else "fine-tuning"
    reasons = [f"{missing} the target; {how} meets it: {describe(best, metric)} >= {target.min}."]
    if not enough:
        reasons.append(
            f"But there are only {train_examples} training examples (< {min_examples}): the "
            "result may not hold on new data; collect more before committing to fine-tuning."
        )
    pays, requests = True, math.inf
    if prompting and requests_per_month > 0:
        rival, requests = break_even(best, prompting)
        months = requests / requests_per_month
        pays = months <= horizon_months
        setup = (
            f"${best.setup_usd:,.2f} of setup"
            if best.setup_usd is not None and best.per_request_usd is not None
            else f"Training ({best.setup_seconds:.0f} s of compute)"
        )
        when = (
            f"after {requests:,.0f} requests, about {months:.1f} months at "
            if math.isfinite(requests)
            else "never (it saves nothing per request) at "
        )
        reasons.append(
            f"{setup} pays for itself against {rival} {when}{requests_per_month:,} requests/month"
            + ("." if pays else f": beyond the {horizon_months}-month horizon.")
        )
    slow = [c for c in prompting if c.latency_p95_ms > (target.max_latency_ms or math.inf)]
    if not pays and prompting and len(slow) == len(prompting):
        pays = True  # the framework's other reason: a latency target that only fine-tuning meets
        reasons.append(
            f"A latency target needs it: every prompting and RAG candidate exceeds p95 "
            f"{target.max_latency_ms:.0f} ms; {best.name} meets it at "
            f"{best.latency_p95_ms:.0f} ms."
        )
    passed = enough and pays
    # The framework's "one repetitive task type" holds by construction: a task file has one
    # contract and one output format, and every example is checked against them.
    checks = [*reasons, "one repetitive task type: one contract and output format for all examples"]
    gates = [*gates, Gate(step, "Is fine-tuning justified?", passed, "; ".join(checks))]
    changes = []
    if not enough:
        changes.append(
            f"At least {min_examples} training examples would lift the examples gate for "
            f"{best.name}."
        )
    if not pays and prompting and math.isfinite(requests):
        changes.append(
            f"At {math.ceil(requests / horizon_months):,} requests/month or more, {best.name}'s "
            f"setup pays for itself within the {horizon_months}-month horizon."
        )
    if not passed:
        return Recommendation(None, step, "blocked", metric, reasons, gates, alternatives, changes)
    reasons.append(f"Recommend {best.name} (step {step}).")
    return Recommendation(best.name, step, "meets-target", metric, reasons, gates, alternatives)


def _target_missed(
    ranked: list[CandidateSummary],
    target: Target,
    metric: str,
    gates: list[Gate],
    alternatives: list[str],
    train_examples: int,
    has_documents: bool,
    min_examples: int,
) -> Recommendation:
    prompting = [c for c in ranked if c.family == "prompting"]
    best = (prompting or ranked)[0]
    reasons = [
        f"No prompting candidate reaches {_bar(target, metric)}; "
        f"the best is {describe(best, metric)}."
    ]
    if best.quality.ci_high >= target.min:
        reasons.append("The best candidate's CI reaches the target: more test data may settle it.")
    retrieving = [c for c in ranked if c.family == "retrieval"]
    if retrieving:
        reasons.append(f"RAG was measured too and misses: {describe(retrieving[0], metric)}.")
    elif has_documents:
        reasons.append("The task has documents: measure RAG next (step 2).")
    tuned = [c for c in ranked if c.trains]
    if tuned:
        reasons.append(f"Fine-tuning was measured too and misses: {describe(tuned[0], metric)}.")
    elif train_examples >= min_examples:
        reasons.append(
            f"There are {train_examples} training examples (>= {min_examples}): "
            "fine-tuning is worth measuring (step 3)."
        )
    else:
        reasons.append(
            f"Fine-tuning needs about {min_examples} examples and there are {train_examples}: "
            "collect more, or improve the prompt and contract."
        )
    return Recommendation(None, 1, "target-missed", metric, reasons, gates, alternatives)
