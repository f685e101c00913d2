"""Each sentence of the decision that quotes a measured figure carries it as Evidence beside the
words: the candidate, metric, value, CI and n (as results.json keeps metrics) and the target."""

from __future__ import annotations

import dataclasses

from tunewise.deciding.decide import decide
from tunewise.deciding.verdict import CandidateSummary, Evidence, Recommendation
from tunewise.evaluation import MetricValue
from tunewise.task.config import Target

TARGET = Target(metric="accuracy", min=0.7)


def cand(
    name: str,
    value: float,
    strategy: str = "zero-shot",
    *,
    tokens: float = 100.0,
    compute: float = 0.1,
    setup: float = 0.1,
) -> CandidateSummary:
    quality = MetricValue(value, value - 0.031234, value + 0.0212345, 200)
    return CandidateSummary(
        name,
        strategy,
        quality,
        tokens,
        50.0,
        setup_seconds=setup,
        compute_seconds_per_request=compute,
    )


def run(
    candidates: list[CandidateSummary], target: Target | None = TARGET, **kw: int
) -> Recommendation:
    options = {"train_examples": 100, "requests_per_month": 1000, "horizon_months": 12, **kw}
    return decide(candidates, target, "accuracy", has_documents=True, **options)


def figure(c: CandidateSummary, target: float | None = 0.7) -> Evidence:
    q = c.quality
    rounded = round(q.value, 4), round(q.ci_low, 4), round(q.ci_high, 4)
    return Evidence(c.name, "accuracy", *rounded, q.n, target)


def test_the_winning_reason_quotes_the_winner_against_the_target() -> None:
    cheap, rich = cand("zero-shot", 0.75, tokens=60), cand("few-shot", 0.92, "few-shot", tokens=900)
    rec = run([rich, cheap])
    assert len(rec.evidence) == len(rec.reasons)
    assert rec.evidence[0] == (figure(cheap),)
    assert rec.evidence[1] == ()  # tokens and latency: no metric quoted
    assert rec.evidence[0][0].value == 0.75 and rec.evidence[0][0].ci_low == 0.7188
    # Step 1's gate quotes every prompting candidate, each held against the target.
    assert rec.gates[0].evidence == (figure(rich), figure(cheap))


def test_a_missed_target_quotes_the_best_of_each_family() -> None:
    prompt = cand("few-shot", 0.55, "few-shot")
    rag = cand("rag", 0.6, "rag")
    tuned = cand("lora", 0.65, "lora")
    rec = run([prompt, rag, tuned])
    assert rec.verdict == "target-missed"
    by_reason = dict(zip(rec.reasons, rec.evidence, strict=True))
    assert by_reason[rec.reasons[0]] == (figure(prompt),)
    rag_reason = next(r for r in rec.reasons if r.startswith("RAG was measured too"))
    tuned_reason = next(r for r in rec.reasons if r.startswith("Fine-tuning was measured too"))
    assert by_reason[rag_reason] == (figure(rag),)
    assert by_reason[tuned_reason] == (figure(tuned),)
    assert [g.evidence for g in rec.gates] == [(figure(prompt),), (figure(rag),)]


def test_without_a_target_the_best_is_quoted_against_none() -> None:
    rec = run([cand("zero-shot", 0.4), cand("few-shot", 0.6, "few-shot")], target=None)
    assert rec.evidence == [(figure(cand("few-shot", 0.6, "few-shot"), None),), ()]


def test_the_fine_tuning_gate_quotes_the_tuned_candidate_and_a_hybrid_its_parts() -> None:
    few = cand("few-shot", 0.6, "few-shot", compute=0.5)
    rag = cand("rag", 0.65, "rag", compute=0.45)
    hybrid = cand("hybrid", 0.8, "hybrid", compute=0.2, setup=600)
    rec = run([few, rag, hybrid], train_examples=1500)
    assert (rec.candidate, rec.step) == ("hybrid", 4)
    assert rec.evidence[0] == (figure(hybrid),)
    assert rec.reasons[-1] == "Recommend hybrid (step 4)." and rec.evidence[-1] == ()
    parts, justified = rec.gates[2], rec.gates[3]
    assert parts.evidence == (figure(hybrid, None), figure(rag, None))
    assert justified.evidence == (figure(hybrid),)


def test_a_fragile_flag_quotes_the_candidate_in_its_reason_and_in_step_one() -> None:
    shaky = dataclasses.replace(cand("few-shot", 0.667, "few-shot"), redraws=(0.667, 0.5, 0.6))
    rec = run([cand("zero-shot", 0.5), shaky])
    flagged = [e for r, e in zip(rec.reasons, rec.evidence, strict=True) if "fragile" in r]
    assert flagged == [(figure(shaky, None),)]
    assert figure(shaky, None) in rec.gates[0].evidence


def test_reasons_added_later_carry_no_evidence_and_keep_the_others_in_place() -> None:
    rec = run([cand("zero-shot", 0.75)])
    added = dataclasses.replace(rec, reasons=[*rec.reasons, "A warning from elsewhere."])
    assert added.evidence == [*rec.evidence, ()]
    quoted = added.with_reason("A figure.", figure(cand("zero-shot", 0.75)))
    assert quoted.evidence[-1] == (figure(cand("zero-shot", 0.75)),)
    assert len(quoted.evidence) == len(quoted.reasons)
