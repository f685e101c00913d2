"""The four-step framework as explicit gates over measured results (pure; never runs a model).

The gates: step 1 (prompting), step 2 (RAG, when measured), step 3 (fine-tuning: quality,
examples, and break-even in measured compute against the cheapest prompting or RAG candidate) and
step 4 (a fine-tuned model with RAG, under the same justification when it is the cheapest tuned
candidate that meets the target); otherwise which step the numbers point to next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from tunewise.deciding.tuning_gate import fine_tuning_gate, hybrid_parts, when_tuning_pays
from tunewise.deciding.verdict import (
    CandidateSummary,
    Evidence,
    Gate,
    Reasons,
    Recommendation,
    bar,
    cost_order,
    describe,
    meets,
    step_of,
)
from tunewise.task.config import Target

MIN_FINE_TUNING_EXAMPLES = 500


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


def _finish(
    recommendation: Recommendation, candidates: Sequence[CandidateSummary], metric: str
) -> Recommendation:
    """Every decision's last step: the closest candidate and its step, and fragile prompting
    results flagged in the reasons and in step 1's gate."""
    best = max(candidates, key=lambda c: (c.quality.value, -c.tokens_per_request))
    closest = next((c for c in candidates if c.name == recommendation.candidate), best)
    recommendation = replace(
        recommendation, closest=closest.name, closest_step=step_of(closest.strategy)
    )
    flagged = [(c, fragile(c, metric)) for c in candidates if c.family == "prompting"]
    flags = [(text, Evidence.of(c, metric)) for c, text in flagged if text]
    if not flags:
        return recommendation
    gates = [
        replace(
            g,
            detail=f"{g.detail}; " + " ".join(text for text, _ in flags),
            evidence=(*g.evidence, *(figure for _, figure in flags)),
        )
        if g.step == 1
        else g
        for g in recommendation.gates
    ]
    for text, figure in flags:
        recommendation = recommendation.with_reason(text, figure)
    return replace(recommendation, gates=gates)


@dataclass(frozen=True)
class _Asked:
    """What every step's gate reads: the measured candidates (ranked best first), the target
    and its metric, and the task's figures."""

    candidates: Sequence[CandidateSummary]
    ranked: list[CandidateSummary]
    target: Target
    metric: str
    alternatives: list[str]
    train_examples: int
    has_documents: bool
    min_examples: int
    learning_curve: str | None
    volume: tuple[int, int]  # requests per month, horizon in months

    def tuned(self) -> list[CandidateSummary]:
        """The fine-tuned candidates that meet the target, cheapest first."""
        meeting = (c for c in self.candidates if c.trains and meets(c, self.target))
        return sorted(meeting, key=cost_order)


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
    """Step 1: the cheapest prompting candidate that meets the target wins. Step 3: else a
    fine-tuned candidate that meets it, with enough examples, whose training pays for itself
    within the horizon. Otherwise no recommendation, and what to try next."""
    if not candidates:
        raise ValueError("nothing to decide: no candidate was measured")
    ranked = sorted(candidates, key=lambda c: (-c.quality.value, *cost_order(c)))
    alternatives = [describe(c, metric) for c in ranked]
    if target is None:
        return _finish(_no_target(ranked[0], metric, alternatives), candidates, metric)
    asked = _Asked(
        candidates, ranked, target, metric, alternatives, train_examples, has_documents,
        min_examples, learning_curve, (requests_per_month, horizon_months),
    )  # fmt: skip
    gates: list[Gate] = []  # each step that is asked adds its gate
    decided = (
        _prompting_step(asked, gates, 1)
        or _prompting_step(asked, gates, 2)
        or _fine_tuning_step(asked, gates)
        or _target_missed(asked, gates)
    )
    return _finish(decided, candidates, metric)


def _no_target(best: CandidateSummary, metric: str, alternatives: list[str]) -> Recommendation:
    """No target: the best measured candidate, and how to get a decision."""
    reasons = Reasons()
    reasons.add(
        "No target is set, so no candidate can be said to be good enough; "
        f"the best measured is {describe(best, metric)}.",
        Evidence.of(best, metric),
    )
    reasons.add("Set `target: {metric: ..., min: ...}` in task.yaml to get a decision.")
    return Recommendation(
        best.name, 1, "no-target", metric, reasons.texts, [], alternatives,
        evidence=reasons.evidence,
    )  # fmt: skip


_STEPS = {
    1: ("prompting", "Does a prompting candidate meet the target?"),
    2: ("retrieval", "Does prompting with retrieved documents (RAG) meet the target?"),
}


def _prompting_step(asked: _Asked, gates: list[Gate], step: int) -> Recommendation | None:
    """Steps 1 and 2: the cheapest candidate of the step that meets the target wins, with the
    volume at which a fine-tuned one would pay. Step 2 is asked only when RAG was measured."""
    family, question = _STEPS[step]
    measured = [c for c in asked.candidates if c.family == family]
    if step == 2 and not measured:
        return None
    meeting = sorted((c for c in measured if meets(c, asked.target)), key=cost_order)
    gates.append(_gate(step, question, meeting, measured, asked.target, asked.metric))
    if not meeting:
        return None
    won = _prompting_wins(meeting, asked.target, asked.metric, [*gates], asked.alternatives, step)
    won.changes.extend(when_tuning_pays(asked.tuned(), meeting, asked.volume[1]))
    return won


def _fine_tuning_step(asked: _Asked, gates: list[Gate]) -> Recommendation | None:
    """Steps 3 and 4: the cheapest fine-tuned candidate that meets the target, through the
    fine-tuning gate (and a hybrid through the check of its parts)."""
    tuned = asked.tuned()
    if not tuned:
        return None
    if tuned[0].family == "hybrid":
        gates.append(hybrid_parts(tuned[0], asked.candidates, asked.metric))
    # The rivals fine-tuning must beat on cost: prompting, then RAG.
    rivals = [c for c in asked.candidates if c.family == "prompting"]
    rivals += [c for c in asked.candidates if c.family == "retrieval"]
    gated = fine_tuning_gate(
        tuned[0], rivals, asked.target, asked.metric, [*gates], asked.alternatives,
        asked.train_examples, asked.min_examples, asked.volume,
    )  # fmt: skip
    if gated.verdict == "blocked" and asked.train_examples < asked.min_examples:
        return _with_curve(gated, asked.learning_curve)
    return gated


def _with_curve(recommendation: Recommendation, curve: str | None) -> Recommendation:
    """How many examples would close the gap, from the measured learning curve, if any."""
    if not curve:
        return recommendation
    recommendation = recommendation.with_reason(f"Learning curve: {curve}")
    recommendation.changes.append(f"More training examples, per the learning curve: {curve}")
    return recommendation


def _gate(
    step: int,
    question: str,
    meeting: list[CandidateSummary],
    asked: list[CandidateSummary],
    target: Target,
    metric: str,
) -> Gate:
    """Steps 1 and 2: does a candidate of the step meet the target; every one's figures."""
    detail = f"target {bar(target, metric)}; " + "; ".join(describe(c, metric) for c in asked)
    figures = tuple(Evidence.of(c, metric, target) for c in asked)
    return Gate(step, question, bool(meeting), detail, figures)


def _prompting_wins(
    meeting: list[CandidateSummary],
    target: Target,
    metric: str,
    gates: list[Gate],
    alternatives: list[str],
    step: int = 1,
) -> Recommendation:
    best = meeting[0]
    figure = Evidence.of(best, metric, target)
    how = "Prompting" if step == 1 else "Prompting with retrieved documents (RAG)"
    reasons = Reasons()
    reasons.add(f"{how} meets the target: {describe(best, metric)} >= {target.min}.", figure)
    reasons.add(
        f"It is the cheapest candidate that does, at {best.tokens_per_request:.0f} tokens "
        f"and {best.latency_p50_ms:.0f} ms (p50) per request; stop here (step {step})."
    )
    if best.quality.ci_low < target.min:
        reasons.add(
            f"Its 95% CI ({best.quality.ci_low:.3f}-{best.quality.ci_high:.3f}) straddles the "
            "target: more test examples would make this certain.",
            figure,
        )
    return Recommendation(
        best.name, step, "meets-target", metric, reasons.texts, gates, alternatives,
        evidence=reasons.evidence,
    )  # fmt: skip


def _target_missed(asked: _Asked, gates: list[Gate]) -> Recommendation:
    """No candidate meets the target: the best one, what else was measured, and what to try
    next."""
    ranked, target, metric = asked.ranked, asked.target, asked.metric
    train_examples, min_examples = asked.train_examples, asked.min_examples
    prompting = [c for c in ranked if c.family == "prompting"]
    best = (prompting or ranked)[0]
    figure = Evidence.of(best, metric, target)
    which = "prompting candidate" if prompting else "candidate"  # a run may pin no prompting
    reasons = Reasons()
    reasons.add(
        f"No {which} reaches {bar(target, metric)}; the best is {describe(best, metric)}.", figure
    )
    if best.quality.ci_high >= target.min:
        reasons.add(
            "The best candidate's CI reaches the target: more test data may settle it.", figure
        )
    retrieving = [c for c in ranked if c.family == "retrieval"]
    if retrieving:
        reasons.add(
            f"RAG was measured too and misses: {describe(retrieving[0], metric)}.",
            Evidence.of(retrieving[0], metric, target),
        )
    elif asked.has_documents:
        reasons.add("The task has documents: measure RAG next (step 2).")
    tuned = [c for c in ranked if c.trains]
    if tuned:
        reasons.add(
            f"Fine-tuning was measured too and misses: {describe(tuned[0], metric)}.",
            Evidence.of(tuned[0], metric, target),
        )
    elif train_examples >= min_examples:
        reasons.add(
            f"There are {train_examples} training examples (>= {min_examples}): "
            "fine-tuning is worth measuring (step 3)."
        )
    else:
        reasons.add(
            f"Fine-tuning needs about {min_examples} examples and there are {train_examples}: "
            "collect more, or improve the prompt and contract."
        )
    missed = Recommendation(
        None, 1, "target-missed", metric, reasons.texts, [*gates], asked.alternatives,
        evidence=reasons.evidence,
    )  # fmt: skip
    return _with_curve(missed, asked.learning_curve)
