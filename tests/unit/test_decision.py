"""decide(): steps 1 and 3 of the framework as gates over synthetic measured candidates."""

from __future__ import annotations

import pytest

from tunewise.decision import MIN_FINE_TUNING_EXAMPLES, CandidateSummary, Recommendation, decide
from tunewise.evaluation import MetricValue
from tunewise.task import Target

TARGET = Target(metric="accuracy", min=0.7)


def cand(
    name: str,
    value: float,
    *,
    strategy: str = "zero-shot",
    tokens: float = 100.0,
    latency: float = 50.0,
    ci: tuple[float, float] | None = None,
    n: int = 200,
) -> CandidateSummary:
    low, high = ci if ci is not None else (value - 0.02, value + 0.02)
    return CandidateSummary(name, strategy, MetricValue(value, low, high, n), tokens, latency)


def run(
    candidates: list[CandidateSummary],
    target: Target | None = TARGET,
    *,
    train_examples: int = 100,
    has_documents: bool = False,
) -> Recommendation:
    return decide(
        candidates,
        target,
        "accuracy",
        train_examples=train_examples,
        has_documents=has_documents,
    )


def joined(recommendation: Recommendation) -> str:
    return "\n".join(recommendation.reasons)


# ---- prompting meets the target ------------------------------------------------------------


def test_cheapest_meeting_candidate_wins_over_a_pricier_better_one() -> None:
    cheap = cand("zero-shot", 0.75, tokens=60)
    rich = cand("few-shot", 0.92, strategy="few-shot", tokens=900)
    rec = run([rich, cheap])
    assert rec.candidate == "zero-shot"
    assert rec.verdict == "meets-target"
    assert rec.step == 1
    assert rec.metric == "accuracy"
    assert "0.750" in rec.reasons[0] and "0.7" in rec.reasons[0]
    assert "60 tokens" in rec.reasons[1]


def test_a_cheaper_candidate_below_target_is_not_chosen() -> None:
    below = cand("tiny", 0.5, tokens=10, latency=1)
    meets = cand("few-shot", 0.8, strategy="few-shot", tokens=300)
    rec = run([below, meets])
    assert rec.candidate == "few-shot"


def test_exactly_at_target_meets_it() -> None:
    rec = run([cand("zero-shot", 0.7, ci=(0.7, 0.75))])
    assert rec.candidate == "zero-shot"
    assert rec.verdict == "meets-target"


def test_equal_tokens_fall_back_to_latency() -> None:
    slow = cand("slow", 0.8, tokens=100, latency=900)
    fast = cand("fast", 0.75, strategy="few-shot", tokens=100, latency=20)
    assert run([slow, fast]).candidate == "fast"
    # And tokens beat latency: fewer tokens wins even when slower.
    fewer = cand("fewer", 0.75, tokens=99, latency=5000)
    assert run([slow, fast, fewer]).candidate == "fewer"


def test_ci_straddling_the_target_adds_a_reason() -> None:
    straddling = run([cand("zero-shot", 0.74, ci=(0.66, 0.81))])
    assert straddling.candidate == "zero-shot"
    assert "straddles" in joined(straddling)
    assert "0.660-0.810" in joined(straddling)

    clear = run([cand("zero-shot", 0.8, ci=(0.72, 0.87))])
    assert "straddles" not in joined(clear)


def test_meeting_gate_passes_with_numbers_in_detail() -> None:
    rec = run([cand("zero-shot", 0.75, n=123), cand("few-shot", 0.81, strategy="few-shot")])
    assert len(rec.gates) == 1
    gate = rec.gates[0]
    assert gate.step == 1
    assert gate.passed is True
    assert "0.7" in gate.detail  # the target
    assert "zero-shot: accuracy 0.750" in gate.detail
    assert "n=123" in gate.detail
    assert "few-shot: accuracy 0.810" in gate.detail


def test_alternatives_rank_every_candidate_by_quality() -> None:
    rec = run([cand("a", 0.71), cand("b", 0.93, strategy="few-shot"), cand("c", 0.80)])
    assert [alt.split(":")[0] for alt in rec.alternatives] == ["b", "c", "a"]


# ---- nobody meets the target ---------------------------------------------------------------


def test_target_missed_has_no_candidate_and_a_failed_gate() -> None:
    rec = run([cand("zero-shot", 0.41), cand("few-shot", 0.55, strategy="few-shot")])
    assert rec.candidate is None
    assert rec.verdict == "target-missed"
    assert rec.gates[0].passed is False
    assert "0.410" in rec.gates[0].detail and "0.550" in rec.gates[0].detail
    assert "few-shot: accuracy 0.550" in rec.reasons[0]  # names the best


@pytest.mark.parametrize("has_documents", [True, False])
def test_rag_is_suggested_only_when_there_are_documents(has_documents: bool) -> None:
    rec = run([cand("zero-shot", 0.4)], has_documents=has_documents)
    text = joined(rec)
    assert ("RAG" in text) is has_documents
    assert ("documents" in text) is has_documents


@pytest.mark.parametrize(
    ("train_examples", "worth_measuring"),
    [
        (MIN_FINE_TUNING_EXAMPLES, True),
        (5000, True),
        (MIN_FINE_TUNING_EXAMPLES - 1, False),
        (0, False),
    ],
)
def test_fine_tuning_advice_depends_on_training_examples(
    train_examples: int, worth_measuring: bool
) -> None:
    rec = run([cand("zero-shot", 0.4)], train_examples=train_examples)
    text = joined(rec)
    assert ("fine-tuning is worth measuring" in text) is worth_measuring
    assert ("collect more" in text) is not worth_measuring
    assert f"{train_examples}" in text


def test_target_missed_notes_when_the_best_ci_reaches_the_target() -> None:
    near = run([cand("zero-shot", 0.66, ci=(0.58, 0.74))])
    far = run([cand("zero-shot", 0.50, ci=(0.42, 0.58))])
    assert "more test data" in joined(near)
    assert "more test data" not in joined(far)


def test_target_missed_reason_does_not_contradict_a_candidate_that_meets_it() -> None:
    rec = run([cand("zero-shot", 0.4), cand("rag", 0.95, strategy="rag")])
    assert not rec.reasons[0].startswith("No measured candidate reaches")


# ---- no target, nothing to decide ----------------------------------------------------------


def test_no_target_recommends_the_best_by_quality() -> None:
    cheap = cand("zero-shot", 0.6, tokens=10)
    best = cand("few-shot", 0.9, strategy="few-shot", tokens=1000)
    rec = run([cheap, best], target=None)
    assert rec.candidate == "few-shot"
    assert rec.verdict == "no-target"
    assert rec.gates == []
    assert "target" in joined(rec)


def test_no_target_breaks_quality_ties_by_cost() -> None:
    pricey = cand("pricey", 0.8, tokens=500)
    cheap = cand("cheap", 0.8, tokens=50)
    assert run([pricey, cheap], target=None).candidate == "cheap"


def test_no_candidates_is_an_error() -> None:
    with pytest.raises(ValueError, match="no candidate"):
        run([])
    with pytest.raises(ValueError):
        run([], target=None)


# ---- step 3: fine-tuning ------------------------------------------------------------------


def tuned(value: float, *, setup: float = 600.0, compute: float = 0.2) -> CandidateSummary:
    return CandidateSummary(
        "lora",
        "lora",
        MetricValue(value, value - 0.03, value + 0.03, 300),
        100,
        200,
        setup_seconds=setup,
        compute_seconds_per_request=compute,
    )


def prompt(value: float, compute: float) -> CandidateSummary:
    return CandidateSummary(
        "few-shot",
        "few-shot",
        MetricValue(value, value - 0.03, value + 0.03, 300),
        350,
        400,
        setup_seconds=0.1,
        compute_seconds_per_request=compute,
    )


def step3(candidates: list[CandidateSummary], examples: int, per_month: int) -> Recommendation:
    return decide(
        candidates,
        TARGET,
        "accuracy",
        train_examples=examples,
        has_documents=False,
        requests_per_month=per_month,
        horizon_months=12,
    )


def test_fine_tuning_is_recommended_when_prompting_misses_and_it_pays_off() -> None:
    # 600 s of training saves 0.3 s per request: break-even after 2,000 requests.
    rec = step3([prompt(0.6, compute=0.5), tuned(0.8)], examples=1500, per_month=1000)
    assert (rec.candidate, rec.step, rec.verdict) == ("lora", 3, "meets-target")
    assert [g.passed for g in rec.gates] == [False, True]
    assert "2,000 requests" in joined(rec) and "2.0 months" in joined(rec)


def test_fine_tuning_is_blocked_by_too_few_examples() -> None:
    rec = step3([prompt(0.6, compute=0.5), tuned(0.8)], examples=120, per_month=1000)
    assert rec.candidate is None and rec.verdict == "blocked" and rec.step == 3
    assert "only 120 training examples" in joined(rec)


def test_fine_tuning_is_blocked_when_break_even_lies_beyond_the_horizon() -> None:
    # 0.001 s saved per request: 600,000 requests, 600 months at 1,000 a month.
    rec = step3([prompt(0.6, compute=0.201), tuned(0.8)], examples=1500, per_month=1000)
    assert rec.candidate is None and rec.verdict == "blocked"
    assert "beyond the 12-month horizon" in joined(rec)
    assert rec.gates[-1].step == 3 and not rec.gates[-1].passed


def test_a_measured_fine_tuned_candidate_below_target_is_named() -> None:
    rec = step3([prompt(0.6, compute=0.5), tuned(0.65)], examples=1500, per_month=1000)
    assert rec.candidate is None and rec.verdict == "target-missed"
    assert "Fine-tuning was measured too" in joined(rec)
    assert "worth measuring" not in joined(rec)
