"""Knowledge-task measures, on hand-computed examples: recall@k and MRR, answer containment,
abstention, hallucination and stale answers after a document update."""

from __future__ import annotations

import pytest

from tunewise.evaluation import MetricValue
from tunewise.evaluation.grounding import (
    abstained,
    context_metrics,
    faithfulness,
    knowledge_metrics,
    retrieval_metrics,
    stale_rate,
)
from tunewise.evaluation.metrics import contains_answer

DONT_KNOW = "I don't know"


def assert_ci(metric: MetricValue, value: float, n: int) -> None:
    assert metric.value == pytest.approx(value)
    assert metric.n == n
    assert 0.0 <= metric.ci_low <= metric.value <= metric.ci_high <= 1.0


# ---- retrieval -----------------------------------------------------------------------------

RANKED = [
    ["a", "b", "c"],  # gold a at rank 1
    ["x", "a"],  # rank 2
    ["b", "c", "d", "e", "f", "a"],  # rank 6
    ["b", "c"],  # not retrieved
    [f"q{i}" for i in range(9)] + ["z"],  # gold z at rank 10
]
GOLD = ["a", "a", "a", "a", "z"]


def test_recall_at_k_counts_gold_documents_within_the_first_k() -> None:
    metrics = retrieval_metrics(RANKED, GOLD, seed=0)
    assert set(metrics) == {"recall@1", "recall@5", "recall@10", "mrr"}
    assert_ci(metrics["recall@1"], 1 / 5, 5)
    assert_ci(metrics["recall@5"], 2 / 5, 5)
    assert_ci(metrics["recall@10"], 4 / 5, 5)


def test_mrr_is_the_mean_reciprocal_rank_with_zero_when_missed() -> None:
    metrics = retrieval_metrics(RANKED, GOLD, seed=0)
    assert_ci(metrics["mrr"], (1 + 1 / 2 + 1 / 6 + 0 + 1 / 10) / 5, 5)


def test_a_gold_document_below_rank_ten_counts_for_mrr_only() -> None:
    ranked = [[f"d{i}" for i in range(11)] + ["gold"]]
    metrics = retrieval_metrics(ranked, ["gold"], seed=0)
    assert metrics["recall@10"].value == 0.0
    assert metrics["mrr"].value == pytest.approx(1 / 12)
    assert metrics["mrr"].ci_low == metrics["mrr"].ci_high == pytest.approx(1 / 12)  # n == 1


def test_perfect_retrieval_has_a_degenerate_interval() -> None:
    metrics = retrieval_metrics([["a"], ["b", "a"]], ["a", "b"], seed=3)
    for metric in metrics.values():
        assert (metric.value, metric.ci_low, metric.ci_high, metric.n) == (1.0, 1.0, 1.0, 2)


def test_retrieval_intervals_are_seeded() -> None:
    assert retrieval_metrics(RANKED, GOLD, seed=7) == retrieval_metrics(RANKED, GOLD, seed=7)


def test_rankings_and_gold_ids_must_pair_up() -> None:
    with pytest.raises(ValueError, match="2 rankings but 1 gold"):
        retrieval_metrics([["a"], ["b"]], ["a"], seed=0)


# ---- the context shown ------------------------------------------------------------------


SHOWN = [
    [("a", "The ferry leaves at 7:15."), ("b", "The bakery opens at six.")],  # gold a: 1/2
    [("c", "Tolls rose in May."), ("c", "The new toll is two euros.")],  # gold c: 2/2
    [("d", "Nothing about the council.")],  # gold e: 0/1
]


def test_context_precision_and_answer_in_context_by_hand() -> None:
    references = ["7:15", "two euros", "Tuesday"]
    metrics = context_metrics(SHOWN, references, ["a", "c", "e"], seed=0)
    assert_ci(metrics["context_precision"], (1 / 2 + 1 + 0) / 3, 3)
    assert_ci(metrics["answer_in_context"], 2 / 3, 3)


def test_without_gold_ids_a_passage_is_relevant_when_it_holds_the_answer() -> None:
    metrics = context_metrics(SHOWN, ["7:15", "toll", "council"], [None, None, None], seed=0)
    # 1 of 2; 1 of 2 (whole words: "Tolls" is not "toll"); 1 of 1.
    assert_ci(metrics["context_precision"], (1 / 2 + 1 / 2 + 1) / 3, 3)
    assert_ci(metrics["answer_in_context"], 1.0, 3)


def test_faithfulness_is_the_share_of_answer_words_found_in_the_context() -> None:
    contexts = ["The ferry leaves at 7:15.", "Tolls rose in May.", "x", "y"]
    answers = ["the ferry at 7:15", "tolls rose in June", DONT_KNOW, "?"]
    # "ferry at 715" all found (the article dropped); "tolls rose in june": 3 of 4; the
    # abstention and the answer with no words are left out.
    metric = faithfulness(answers, contexts, DONT_KNOW, seed=0)
    assert metric is not None
    assert_ci(metric, (1 + 3 / 4) / 2, 2)
    assert faithfulness([DONT_KNOW], ["x"], DONT_KNOW, seed=0) is None


# ---- answers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("The currency is the euro.", "Euro", True),
        ("EURO!", "euro", True),
        ("Euro", "EU", False),  # a whole-word run, not a substring
        ("The European Union", "euro", False),
        ("a maple pecan pie", "Maple pecan", True),
        ("pecan and maple", "maple pecan", False),  # the words in order, adjacent
        ("maple, pecan", "maple pecan", True),  # punctuation does not separate
        ("It passed 5 to 2.", "5 to 2", True),
        ("euro", "the euro", True),  # articles are dropped
        ("", "euro", False),
        (DONT_KNOW, "euro", False),
    ],
)
def test_contains_answer(prediction: str, reference: str, expected: bool) -> None:
    assert contains_answer(prediction, reference) is expected


@pytest.mark.parametrize(
    ("prediction", "abstention", "expected"),
    [
        (DONT_KNOW, DONT_KNOW, True),
        ("i DON'T know.", DONT_KNOW, True),  # case and punctuation do not matter
        ("I don't know; the sources do not say.", DONT_KNOW, True),  # starts with the phrase
        ("Well, I don't know", DONT_KNOW, False),  # must open with it
        ("The euro", DONT_KNOW, False),
        ("", DONT_KNOW, False),
        (DONT_KNOW, None, False),  # no abstention phrase: nothing is an abstention
        (DONT_KNOW, "", False),
        ("Not stated", "Not stated.", True),
    ],
)
def test_abstained(prediction: str, abstention: str | None, expected: bool) -> None:
    assert abstained(prediction, abstention) is expected


PREDICTIONS = ["The euro.", "dollar", DONT_KNOW, "Berlin", "i don't know."]
REFERENCES = ["euro", "yen", "peso", "Berlin", "won"]


def test_hallucination_excludes_abstentions() -> None:
    # wrong: dollar, I don't know, i don't know -> of those, only "dollar" is not an abstention.
    metrics = knowledge_metrics(PREDICTIONS, REFERENCES, DONT_KNOW, seed=0)
    assert set(metrics) == {"hallucination_rate", "abstention_rate"}
    assert_ci(metrics["hallucination_rate"], 1 / 5, 5)
    assert_ci(metrics["abstention_rate"], 2 / 5, 5)


def test_without_an_abstention_phrase_every_wrong_answer_is_a_hallucination() -> None:
    metrics = knowledge_metrics(PREDICTIONS, REFERENCES, None, seed=0)
    assert_ci(metrics["hallucination_rate"], 3 / 5, 5)
    assert_ci(metrics["abstention_rate"], 0.0, 5)
    assert metrics["abstention_rate"].ci_high == 0.0


def test_a_wordy_correct_answer_is_not_a_hallucination() -> None:
    metrics = knowledge_metrics(["Paris is the capital."], ["Paris"], DONT_KNOW, seed=0)
    assert metrics["hallucination_rate"] == MetricValue(0.0, 0.0, 0.0, 1)


def test_stale_rate_counts_the_old_fact_without_the_new_one() -> None:
    predictions = [
        "ducat",  # stale
        "The crown.",  # fresh
        "It was the ducat, now the crown",  # mentions both: not stale
        DONT_KNOW,  # neither
        "ducats",  # not the old answer as a whole word
    ]
    previous = ["ducat"] * 5
    current = ["crown"] * 5
    assert_ci(stale_rate(predictions, previous, current, seed=0), 1 / 5, 5)


def test_stale_rate_is_zero_when_every_answer_is_current() -> None:
    value = stale_rate(["crown", "the Crown"], ["ducat", "ducat"], ["crown", "crown"], seed=0)
    assert value == MetricValue(0.0, 0.0, 0.0, 2)
