"""Knowledge-task measures: retrieval recall@k and MRR against gold documents, the context a
retrieving candidate was shown (its precision, whether it held the answer) and how faithful the
answers are to it, hallucination and abstention rates, and stale answers after a document update.
Pure functions, each rate with a bootstrap CI."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tunewise.evaluation.metrics import contains_answer, normalize_answer
from tunewise.evaluation.stats import MetricValue, mean_with_ci

RECALL_AT = (1, 5, 10)


def retrieval_metrics(
    ranked: Sequence[Sequence[str]], gold: Sequence[str], *, seed: int
) -> dict[str, MetricValue]:
    """recall@k: the gold document is among the first k retrieved; mrr: mean of 1/rank
    (0 when it was not retrieved within the recorded depth)."""
    if len(ranked) != len(gold):
        raise ValueError(f"{len(ranked)} rankings but {len(gold)} gold ids; they must pair up")
    ranks = np.array(
        [list(r).index(g) + 1 if g in r else 0 for r, g in zip(ranked, gold, strict=True)]
    )
    found = ranks > 0
    metrics = {
        f"recall@{k}": mean_with_ci((found & (ranks <= k)).astype(float), seed=seed)
        for k in RECALL_AT
    }
    reciprocal = np.where(found, 1.0 / np.maximum(ranks, 1), 0.0)
    metrics["mrr"] = mean_with_ci(reciprocal, seed=seed)
    return metrics


def context_metrics(
    contexts: Sequence[Sequence[tuple[str, str]]],
    references: Sequence[str],
    gold: Sequence[str | None],
    *,
    seed: int,
) -> dict[str, MetricValue]:
    """Of the passages each question was shown, as (document id, text) pairs:
    context_precision, the share that is relevant (from the gold document when the question
    names one, else holding the reference answer); answer_in_context, whether any of them holds
    the reference answer, the most a reader that copies from its context can get right."""
    if not len(contexts) == len(references) == len(gold):
        raise ValueError("contexts, references and gold ids must pair up")
    precision, holds = [], []
    for passages, reference, doc in zip(contexts, references, gold, strict=True):
        relevant = [
            doc_id == doc if doc else contains_answer(text, reference) for doc_id, text in passages
        ]
        precision.append(sum(relevant) / len(relevant) if relevant else 0.0)
        holds.append(any(contains_answer(text, reference) for _, text in passages))
    return {
        "context_precision": mean_with_ci(np.array(precision), seed=seed),
        "answer_in_context": mean_with_ci(np.array(holds, dtype=float), seed=seed),
    }


def faithfulness(
    answers: Sequence[str],
    contexts: Sequence[str],
    abstention: str | None,
    *,
    seed: int,
) -> MetricValue | None:
    """The share of each answer's words (normalised as for token F1) that occur in the context
    it was shown, over the answers that do not abstain; None when every answer abstains. A copied
    span scores 1; words from the model's own memory lower it, right or wrong."""
    shares = []
    for answer, context in zip(answers, contexts, strict=True):
        words = normalize_answer(answer).split()
        if not words or abstained(answer, abstention):
            continue
        shown = set(normalize_answer(context).split())
        shares.append(sum(word in shown for word in words) / len(words))
    return mean_with_ci(np.array(shares), seed=seed) if shares else None


def abstained(prediction: str, abstention: str | None) -> bool:
    if not abstention:
        return False
    phrase = normalize_answer(abstention)
    return bool(phrase) and normalize_answer(prediction).startswith(phrase)


def knowledge_metrics(
    predictions: Sequence[str],
    references: Sequence[str],
    abstention: str | None,
    *,
    seed: int,
) -> dict[str, MetricValue]:
    """hallucination_rate: answers that are wrong (do not contain the reference) and are not an
    abstention; abstention_rate: answers that decline."""
    declined = np.array([abstained(p, abstention) for p in predictions], dtype=bool)
    wrong = np.array(
        [not contains_answer(p, r) for p, r in zip(predictions, references, strict=True)]
    )
    return {
        "hallucination_rate": mean_with_ci((wrong & ~declined).astype(float), seed=seed),
        "abstention_rate": mean_with_ci(declined.astype(float), seed=seed),
    }


def stale_rate(
    predictions: Sequence[str], previous: Sequence[str], current: Sequence[str], *, seed: int
) -> MetricValue:
    """Answers that give the fact as it was before the update and not as it is now."""
    stale = [
        contains_answer(p, old) and not contains_answer(p, new)
        for p, old, new in zip(predictions, previous, current, strict=True)
    ]
    return mean_with_ci(np.array(stale, dtype=float), seed=seed)
