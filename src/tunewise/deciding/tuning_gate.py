"""Steps 3 and 4 of the framework: is fine-tuning justified (quality, examples, and the
break-even of its setup against the cheapest prompting or RAG candidate), and does a hybrid
beat both its parts."""

from __future__ import annotations

import math
from collections.abc import Sequence

from tunewise.core.costs import break_even_requests
from tunewise.deciding.verdict import (
    CandidateSummary,
    Evidence,
    Gate,
    Reasons,
    Recommendation,
    describe,
    step_of,
)
from tunewise.task.config import Target


def when_tuning_pays(
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


def hybrid_parts(
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
    figures = tuple(Evidence.of(c, metric) for c in [hybrid, *parts])
    return Gate(4, "Does the hybrid beat both its parts?", beats and bool(parts), detail, figures)


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


def fine_tuning_gate(
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
    """Steps 3 and 4: `best` meets the target; is fine-tuning it justified? Enough examples,
    and its setup pays for itself within the horizon against the cheapest of `prompting` (the
    prompting and RAG candidates), or a latency target only it meets."""
    enough = train_examples >= min_examples
    step = step_of(best.strategy)
    reasons = Reasons()
    _meets_reason(reasons, best, target, metric, rag_measured=any(g.step == 2 for g in gates))
    if not enough:
        reasons.add(
            f"But there are only {train_examples} training examples (< {min_examples}): the "
            "result may not hold on new data; collect more before committing to fine-tuning."
        )
    pays, requests = _pays_for_itself(reasons, best, prompting, volume)
    if not pays and _only_it_is_fast_enough(reasons, best, prompting, target):
        pays = True  # the framework's other reason: a latency target that only fine-tuning meets
    passed = enough and pays
    gates = [*gates, _justified(step, passed, reasons)]
    if not passed:
        changes = _what_would_pass(best, enough, pays, requests, min_examples, volume[1], prompting)
        return Recommendation(
            None, step, "blocked", metric, reasons.texts, gates, alternatives, changes,
            evidence=reasons.evidence,
        )  # fmt: skip
    reasons.add(f"Recommend {best.name} (step {step}).")
    return Recommendation(
        best.name, step, "meets-target", metric, reasons.texts, gates, alternatives,
        evidence=reasons.evidence,
    )  # fmt: skip


def _meets_reason(
    reasons: Reasons, best: CandidateSummary, target: Target, metric: str, *, rag_measured: bool
) -> None:
    missing = "Prompting and RAG miss" if rag_measured else "Prompting misses"
    how = "a fine-tuned model with RAG" if step_of(best.strategy) == 4 else "fine-tuning"
    reasons.add(
        f"{missing} the target; {how} meets it: {describe(best, metric)} >= {target.min}.",
        Evidence.of(best, metric, target),
    )


def _pays_for_itself(
    reasons: Reasons,
    best: CandidateSummary,
    prompting: list[CandidateSummary],
    volume: tuple[int, int],
) -> tuple[bool, float]:
    """Whether the setup pays for itself within the horizon at the expected volume, and after
    how many requests (inf: never, or no volume or rival to weigh it against)."""
    requests_per_month, horizon_months = volume
    if not prompting or requests_per_month <= 0:
        return True, math.inf
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
    reasons.add(
        f"{setup} pays for itself against {rival} {when}{requests_per_month:,} requests/month"
        + ("." if pays else f": beyond the {horizon_months}-month horizon.")
    )
    return pays, requests


def _only_it_is_fast_enough(
    reasons: Reasons, best: CandidateSummary, prompting: list[CandidateSummary], target: Target
) -> bool:
    """Every prompting and RAG candidate misses the latency target (and there are some)."""
    slow = [c for c in prompting if c.latency_p95_ms > (target.max_latency_ms or math.inf)]
    if not prompting or len(slow) != len(prompting):
        return False
    reasons.add(
        f"A latency target needs it: every prompting and RAG candidate exceeds p95 "
        f"{target.max_latency_ms:.0f} ms; {best.name} meets it at "
        f"{best.latency_p95_ms:.0f} ms."
    )
    return True


def _justified(step: int, passed: bool, reasons: Reasons) -> Gate:
    # The framework's "one repetitive task type" holds by construction: a task file has one
    # contract and one output format, and every example is checked against them.
    checks = [
        *reasons.texts,
        "one repetitive task type: one contract and output format for all examples",
    ]
    figures = tuple(figure for quoted in reasons.evidence for figure in quoted)
    return Gate(step, "Is fine-tuning justified?", passed, "; ".join(checks), figures)


def _what_would_pass(
    best: CandidateSummary,
    enough: bool,
    pays: bool,
    requests: float,
    min_examples: int,
    horizon_months: int,
    prompting: list[CandidateSummary],
) -> list[str]:
    """What would lift the gate: more examples, a higher volume."""
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
    return changes
