"""decide(): steps 1 and 3 of the framework as gates over synthetic measured candidates."""

from __future__ import annotations

import dataclasses

import pytest

from tunewise.deciding.decide import MIN_FINE_TUNING_EXAMPLES, decide
from tunewise.deciding.verdict import CandidateSummary, Recommendation
from tunewise.evaluation import MetricValue
from tunewise.task.config import Target

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


# ---- step 2: retrieval (RAG) ---------------------------------------------------------------


def test_rag_is_chosen_at_step_two_when_prompting_misses_and_it_meets() -> None:
    rec = run(
        [
            cand("zero-shot", 0.5, tokens=60),
            cand("few-shot", 0.6, strategy="few-shot", tokens=400),
            cand("rag", 0.82, strategy="rag", tokens=900, latency=120),
        ],
        has_documents=True,
    )
    assert (rec.candidate, rec.step, rec.verdict) == ("rag", 2, "meets-target")
    assert [(g.step, g.passed) for g in rec.gates] == [(1, False), (2, True)]
    assert "rag" not in rec.gates[0].detail  # gate 1 weighs prompting only
    assert "rag: accuracy 0.820" in rec.gates[1].detail
    assert "RAG" in rec.gates[1].question
    assert rec.reasons[0].startswith("Prompting with retrieved documents (RAG) meets the target")
    assert "900 tokens" in rec.reasons[1] and "step 2" in rec.reasons[1]


def test_rag_is_not_weighed_when_prompting_already_meets_the_target() -> None:
    rec = run(
        [cand("zero-shot", 0.75, tokens=500), cand("rag", 0.95, strategy="rag", tokens=50)],
        has_documents=True,
    )
    assert (rec.candidate, rec.step) == ("zero-shot", 1)
    assert [g.step for g in rec.gates] == [1]


def test_the_cheapest_rag_candidate_that_meets_wins() -> None:
    rec = run(
        [
            cand("zero-shot", 0.4),
            cand("rag-wide", 0.93, strategy="rag", tokens=1500),
            cand("rag-narrow", 0.74, strategy="rag", tokens=600),
            cand("rag-tiny", 0.6, strategy="rag", tokens=100),
        ],
        has_documents=True,
    )
    assert (rec.candidate, rec.step) == ("rag-narrow", 2)
    assert all(f"{n}: accuracy" in rec.gates[1].detail for n in ("rag-wide", "rag-tiny"))


def test_a_rag_candidate_straddling_the_target_says_so() -> None:
    rec = run([cand("zero-shot", 0.4), cand("rag", 0.72, strategy="rag", ci=(0.65, 0.79))])
    assert rec.step == 2
    assert "straddles" in joined(rec)


def test_target_missed_names_the_measured_rag() -> None:
    rec = run(
        [cand("zero-shot", 0.41), cand("rag", 0.55, strategy="rag")],
        has_documents=True,
    )
    assert rec.candidate is None and rec.verdict == "target-missed"
    assert [(g.step, g.passed) for g in rec.gates] == [(1, False), (2, False)]
    text = joined(rec)
    assert "RAG was measured too and misses: rag: accuracy 0.550" in text
    assert "measure RAG next" not in text
    assert rec.reasons[0].startswith("No prompting candidate reaches")
    assert "zero-shot: accuracy 0.410" in rec.reasons[0]


def test_a_run_without_prompting_candidates_does_not_call_its_best_one_prompting() -> None:
    rec = run([cand("rag", 0.55, strategy="rag")], has_documents=True)
    assert rec.reasons[0].startswith("No candidate reaches accuracy >= 0.7; the best is rag:")


# ---- step 4: fine-tuning with RAG ----------------------------------------------------------


def summary(
    name: str,
    strategy: str,
    value: float,
    *,
    compute: float,
    setup: float = 0.1,
    tokens: float = 400,
) -> CandidateSummary:
    return CandidateSummary(
        name,
        strategy,
        MetricValue(value, value - 0.03, value + 0.03, 300),
        tokens,
        300,
        setup_seconds=setup,
        compute_seconds_per_request=compute,
    )


def step4(candidates: list[CandidateSummary], examples: int = 1500) -> Recommendation:
    return decide(
        candidates,
        TARGET,
        "accuracy",
        train_examples=examples,
        has_documents=True,
        requests_per_month=1000,
        horizon_months=12,
    )


def test_a_hybrid_that_alone_meets_the_target_is_step_four() -> None:
    # Against the cheapest rival per request (rag, 0.45 s): 600 s / 0.25 s = 2,400 requests.
    rec = step4(
        [
            summary("few-shot", "few-shot", 0.6, compute=0.5),
            summary("rag", "rag", 0.65, compute=0.45),
            summary("hybrid", "hybrid", 0.8, compute=0.2, setup=600),
        ]
    )
    assert (rec.candidate, rec.step, rec.verdict) == ("hybrid", 4, "meets-target")
    assert [(g.step, g.passed) for g in rec.gates] == [(1, False), (2, False), (4, True), (4, True)]
    assert rec.gates[2].question == "Does the hybrid beat both its parts?"
    text = joined(rec)
    assert rec.reasons[0].startswith("Prompting and RAG miss the target")
    assert "a fine-tuned model with RAG meets it: hybrid: accuracy 0.800" in rec.reasons[0]
    assert "against rag after 2,400 requests" in text and "2.4 months" in text
    assert rec.reasons[-1] == "Recommend hybrid (step 4)."


def test_a_hybrid_with_too_few_examples_is_blocked_at_step_four() -> None:
    rec = step4(
        [
            summary("zero-shot", "zero-shot", 0.5, compute=0.5),
            summary("rag", "rag", 0.6, compute=0.45),
            summary("hybrid", "hybrid", 0.85, compute=0.2, setup=600),
        ],
        examples=120,
    )
    assert (rec.candidate, rec.step, rec.verdict) == (None, 4, "blocked")
    assert rec.gates[-1].step == 4 and rec.gates[-1].passed is False
    assert "only 120 training examples" in joined(rec)


def test_a_hybrid_that_never_pays_off_is_blocked() -> None:
    rec = step4(
        [
            summary("zero-shot", "zero-shot", 0.5, compute=0.2),
            summary("rag", "rag", 0.6, compute=0.3),
            summary("hybrid", "hybrid", 0.85, compute=0.4, setup=600),
        ]
    )
    assert (rec.candidate, rec.step, rec.verdict) == (None, 4, "blocked")
    assert "beyond the 12-month horizon" in joined(rec)


@pytest.mark.parametrize(
    ("lora_tokens", "hybrid_tokens", "expected"),
    [(100, 900, ("lora", 3)), (900, 100, ("hybrid", 4))],
)
def test_the_cheapest_tuned_candidate_decides_between_steps_three_and_four(
    lora_tokens: float, hybrid_tokens: float, expected: tuple[str, int]
) -> None:
    lora = summary("lora", "lora", 0.8, compute=0.2, setup=600, tokens=lora_tokens)
    hybrid = summary("hybrid", "hybrid", 0.9, compute=0.2, setup=600, tokens=hybrid_tokens)
    rec = step4([summary("zero-shot", "zero-shot", 0.5, compute=0.5), lora, hybrid])
    assert (rec.candidate, rec.step) == expected
    assert rec.reasons[0].startswith("Prompting misses the target")  # no rag measured


def test_a_hybrid_below_target_counts_as_measured_fine_tuning() -> None:
    rec = step4(
        [
            summary("zero-shot", "zero-shot", 0.5, compute=0.5),
            summary("rag", "rag", 0.6, compute=0.45),
            summary("hybrid", "hybrid", 0.65, compute=0.2, setup=600),
        ]
    )
    assert rec.candidate is None and rec.verdict == "target-missed"
    text = joined(rec)
    assert "RAG was measured too and misses: rag: accuracy 0.600" in text
    assert "Fine-tuning was measured too and misses: hybrid: accuracy 0.650" in text
    assert "worth measuring" not in text


def test_step_four_checks_the_hybrid_against_both_its_parts() -> None:
    rec = step4(
        [
            summary("rag", "rag", 0.6, compute=0.45),
            summary("lora", "lora", 0.68, compute=0.1, setup=600),
            summary("hybrid", "hybrid", 0.8, compute=0.2, setup=600),
        ]
    )
    parts = next(g for g in rec.gates if g.question == "Does the hybrid beat both its parts?")
    assert parts.passed is True
    assert "rag: accuracy 0.600" in parts.detail and "lora: accuracy 0.680" in parts.detail


def test_what_would_change_a_blocked_or_prompting_decision() -> None:
    blocked = decide(
        [
            summary("few-shot", "few-shot", 0.6, compute=0.5),
            summary("lora", "lora", 0.9, compute=0.25, setup=36_000),
        ],
        TARGET,
        "accuracy",
        train_examples=300,
        has_documents=False,
        requests_per_month=1000,
        horizon_months=12,
    )
    assert blocked.verdict == "blocked"
    # 36,000 s / 0.25 s saved = 144,000 requests, i.e. 12,000 a month over 12 months.
    assert any("12,000 requests/month or more" in c for c in blocked.changes)
    assert any("At least 500 training examples" in c for c in blocked.changes)
    prompting = decide(
        [
            summary("few-shot", "few-shot", 0.9, compute=0.5),
            summary("lora", "lora", 0.95, compute=0.25, setup=36_000),
        ],
        TARGET,
        "accuracy",
        train_examples=1000,
        has_documents=False,
        requests_per_month=1000,
        horizon_months=12,
    )
    assert prompting.candidate == "few-shot"
    assert prompting.changes == [
        "Above 12,000 requests/month, lora (fine-tuned, also meets the target) would pay for "
        "its setup within 12 months against few-shot."
    ]


def test_fine_tuning_blocked_by_too_few_examples_gets_learning_curve_advice() -> None:
    curve = "about 640 examples (80% interval 520-910) would reach accuracy 0.7"
    rec = decide(
        [
            summary("few-shot", "few-shot", 0.6, compute=0.5),
            summary("lora", "lora", 0.75, compute=0.25, setup=600),
        ],
        TARGET,
        "accuracy",
        train_examples=300,
        has_documents=False,
        learning_curve=curve,
        requests_per_month=50_000,
        horizon_months=12,
    )
    assert (rec.candidate, rec.step, rec.verdict) == (None, 3, "blocked")
    assert f"Learning curve: {curve}" in rec.reasons
    assert any(curve in change for change in rec.changes)


def latency(name: str, strategy: str, value: float, p95: float, **kw: float) -> CandidateSummary:
    return dataclasses.replace(summary(name, strategy, value, **kw), latency_p95_ms=p95)


def test_a_latency_ceiling_rules_out_slow_candidates_and_can_justify_fine_tuning() -> None:
    fast = Target(metric="accuracy", min=0.7, max_latency_ms=500)
    rec = decide(
        [
            latency("few-shot", "few-shot", 0.9, 900, compute=0.5),
            latency("lora", "lora", 0.85, 300, compute=0.45, setup=360_000),
        ],
        fast,
        "accuracy",
        train_examples=1000,
        has_documents=False,
        requests_per_month=1000,
        horizon_months=12,
    )
    # few-shot is accurate enough but too slow; lora's training would not pay within 12 months
    # on cost alone, but it is the only candidate under the latency ceiling.
    assert (rec.candidate, rec.step, rec.verdict) == ("lora", 3, "meets-target")
    assert "p95 latency <= 500 ms" in rec.gates[0].detail and not rec.gates[0].passed
    assert any(r.startswith("A latency target needs it") for r in rec.reasons)
    without = decide(
        [
            latency("few-shot", "few-shot", 0.9, 900, compute=0.5),
            latency("lora", "lora", 0.85, 300, compute=0.45, setup=360_000),
        ],
        TARGET,
        "accuracy",
        train_examples=1000,
        has_documents=False,
        requests_per_month=1000,
        horizon_months=12,
    )
    assert (without.candidate, without.step) == ("few-shot", 1)


def test_few_shot_whose_redraws_move_more_than_its_ci_is_flagged_fragile() -> None:
    # The review-sentiment demo: draws span 0.517-0.667, wider than a CI of about 0.1.
    shaky = dataclasses.replace(
        cand("few-shot", 0.667, strategy="few-shot", ci=(0.62, 0.72)), redraws=(0.667, 0.517, 0.6)
    )
    steady = dataclasses.replace(
        cand("few-shot", 0.667, strategy="few-shot", ci=(0.62, 0.72)), redraws=(0.667, 0.65, 0.64)
    )
    flagged = run([cand("zero-shot", 0.5), shaky])
    assert any("few-shot is fragile" in r and "0.517 to 0.667" in r for r in flagged.reasons)
    assert "fragile" in flagged.gates[0].detail and flagged.gates[0].step == 1
    calm = run([cand("zero-shot", 0.5), steady])
    assert not any("fragile" in r for r in calm.reasons)
