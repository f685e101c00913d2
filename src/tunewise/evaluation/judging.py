"""The model judge's pure parts: its prompts, how a verdict becomes a score in [0, 1], how
position bias is counted, and how its grades are compared with people's.

Pointwise, the judge grades one answer from 1 to `scale`; its score is the expected grade under
the judge's probabilities over the grades (the grade it chose when it gives none), mapped to
[0, 1]. Pairwise, it picks the better of the candidate's answer and the baseline's, asked once
with each first; the candidate scores 1 when it wins both orders, 0.5 when the verdict follows
the position, 0 when it loses both. A judge that always picks the first answer shown thus
scores every candidate 0.5, and its first-position rate of 1.0 says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import spearmanr

from tunewise.evaluation.stats import MetricValue, bootstrap_ci

if TYPE_CHECKING:
    from tunewise.task.config import Contract
    from tunewise.task.judge_config import Judge

FIRST, SECOND = "A", "B"


def rubric(judge: Judge, contract: Contract) -> list[str]:
    """The judge's criteria: the user's, else built from the contract."""
    if judge.rubric:
        return [criterion.strip() for criterion in judge.rubric]
    criteria = [
        f"It does what was asked: {contract.objective.strip()}",
        f"It suits its audience: {contract.audience.strip()}",
    ]
    if contract.output_format.type == "text" and contract.output_format.max_chars:
        criteria.append(f"It is at most {contract.output_format.max_chars} characters long.")
    if judge.reference:
        criteria.append("It says what the reference answer says; other wording is fine.")
    return criteria


def pointwise_system(criteria: Sequence[str], scale: int) -> str:
    lines = "\n".join(f"- {c}" for c in criteria)
    return (
        "You grade one answer to a task against these criteria:\n"
        f"{lines}\n"
        f"Reply with one digit only: 1 (fails them) to {scale} (meets them all)."
    )


def pairwise_system(criteria: Sequence[str]) -> str:
    lines = "\n".join(f"- {c}" for c in criteria)
    return (
        "You compare two answers to the same task against these criteria:\n"
        f"{lines}\n"
        f"Reply with one letter only: {FIRST} if answer {FIRST} is better, {SECOND} if answer "
        f"{SECOND} is better."
    )


def pointwise_prompt(question: str, reference: str | None, answer: str, scale: int) -> str:
    shown = f"Input:\n{question}\n\n"
    if reference is not None:
        shown += f"Reference answer:\n{reference}\n\n"
    return f"{shown}Answer to grade:\n{answer}\n\nGrade (1 to {scale}):"


def pairwise_prompt(question: str, reference: str | None, first: str, second: str) -> str:
    shown = f"Input:\n{question}\n\n"
    if reference is not None:
        shown += f"Reference answer:\n{reference}\n\n"
    return (
        f"{shown}Answer {FIRST}:\n{first}\n\nAnswer {SECOND}:\n{second}\n\n"
        f"Better answer ({FIRST} or {SECOND}):"
    )


def grades(scale: int) -> list[str]:
    return [str(g) for g in range(1, scale + 1)]


def pointwise_score(chosen: str, probabilities: Mapping[str, float] | None, scale: int) -> float:
    """The expected grade mapped to [0, 1]: (E[grade] - 1) / (scale - 1)."""
    if probabilities:
        total = sum(probabilities.get(g, 0.0) for g in grades(scale))
        if total > 0:
            expected = sum(int(g) * probabilities.get(g, 0.0) for g in grades(scale)) / total
            return (expected - 1) / (scale - 1)
    return (int(chosen) - 1) / (scale - 1)


def pairwise_score(candidate_first: str, candidate_second: str) -> float:
    """The candidate's result from the verdicts with its answer shown first, then second."""
    wins = (candidate_first == FIRST) + (candidate_second == SECOND)
    return wins / 2


def position_stats(verdicts: Sequence[tuple[str, str]]) -> dict[str, float | int]:
    """Over (candidate-first verdict, candidate-second verdict) pairs: how often the first
    answer shown was picked (0.5 is no bias) and how often the two orders agreed."""
    picks = [v for pair in verdicts for v in pair]
    agreed = [pairwise_score(*pair) != 0.5 for pair in verdicts]
    return {
        "first_position_rate": round(picks.count(FIRST) / len(picks), 4) if picks else 0.0,
        "order_consistency": round(sum(agreed) / len(agreed), 4) if agreed else 0.0,
        "pairs": len(verdicts),
    }


def spearman_with_ci(x: Sequence[float], y: Sequence[float], *, seed: int) -> MetricValue:
    """Spearman's rank correlation with its percentile bootstrap CI; 0 where a resample holds
    one value only (no ranking to agree on)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)

    def statistic(idx: np.ndarray) -> float:
        if np.ptp(a[idx]) == 0 or np.ptp(b[idx]) == 0:
            return 0.0
        return float(spearmanr(a[idx], b[idx]).statistic)

    n = len(a)
    low, high = bootstrap_ci(statistic, n, seed=seed, resamples=500)
    return MetricValue(statistic(np.arange(n)), low, high, n)


def sampled_verdicts(
    probabilities: Sequence[Mapping[str, float] | None], chosen: Sequence[str], seed: int
) -> list[str]:
    """One verdict per judgement drawn from the judge's own probabilities (seeded), as a
    sampling judge would give it; the chosen verdict where it gives none."""
    rng = np.random.default_rng(seed)
    drawn = []
    for p, c in zip(probabilities, chosen, strict=True):
        if p and sum(p.values()) > 0:
            keys = sorted(p)
            weights = np.array([p[k] for k in keys], dtype=float)
            drawn.append(str(rng.choice(keys, p=weights / weights.sum())))
        else:
            drawn.append(c)
    return drawn
