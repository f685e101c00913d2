"""Few-shot demo selection: seeded label-balanced sets and BM25 nearest neighbours."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from conftest import SENTIMENT_TRAIN

from tunewise.strategies.few_shot import FewShotCandidate
from tunewise.strategies.few_shot.demos import prepare, similar_demos, stratified_demos
from tunewise.task.data import Example
from tunewise.task.loading import load_task


def examples(rows: list[tuple[str, str]], prefix: str = "train") -> list[Example]:
    return [
        Example(f"{prefix}-{i}", x, y, f"{prefix}.jsonl:{i + 1}") for i, (x, y) in enumerate(rows)
    ]


TRAIN = examples(SENTIMENT_TRAIN)


def ids(demos: list[Example]) -> list[str]:
    return [d.id for d in demos]


# ---- stratified ----------------------------------------------------------------------------


@pytest.mark.parametrize("k", range(1, len(TRAIN) + 1))
def test_stratified_gives_k_distinct_balanced_demos(k: int) -> None:
    demos = stratified_demos(TRAIN, k, seed=0)
    assert len(demos) == k
    assert len(set(ids(demos))) == k
    assert set(ids(demos)) <= set(ids(TRAIN))
    counts = Counter(d.output for d in demos)
    present = [counts.get(label, 0) for label in ("positive", "negative", "neutral")]
    assert max(present) - min(present) <= 1


def test_stratified_is_deterministic_per_seed() -> None:
    first = stratified_demos(TRAIN, 6, seed=0)
    again = stratified_demos(TRAIN, 6, seed=0)
    other = stratified_demos(TRAIN, 6, seed=1)
    assert ids(first) == ids(again)
    assert ids(first) != ids(other)
    assert set(ids(first)) != set(ids(other))


def test_stratified_does_not_mutate_the_training_list() -> None:
    train = list(TRAIN)
    stratified_demos(train, 7, seed=3)
    assert ids(train) == ids(TRAIN)


def test_stratified_takes_what_a_small_label_has_and_fills_from_others() -> None:
    rows = [("only one", "rare")] + [(f"common {i}", "common") for i in range(10)]
    demos = stratified_demos(examples(rows), 6, seed=0)
    assert len(demos) == 6
    assert Counter(d.output for d in demos) == {"rare": 1, "common": 5}


def test_stratified_k_equal_to_available_returns_every_example_once() -> None:
    demos = stratified_demos(TRAIN, len(TRAIN), seed=5)
    assert sorted(ids(demos)) == sorted(ids(TRAIN))


@pytest.mark.timeout(10)  # this used to loop forever
def test_stratified_never_returns_more_than_available() -> None:
    small = TRAIN[:4]
    demos = stratified_demos(small, 10, seed=0)
    assert sorted(ids(demos)) == sorted(ids(small))


def test_prepare_clamps_k_to_the_training_set(tiny_task: Path) -> None:
    task = load_task(tiny_task)
    spec = FewShotCandidate(strategy="few-shot", k=64)
    predictor = prepare(task, spec, TRAIN, backend=None, name="few-shot")  # type: ignore[arg-type]
    assert predictor.params == {"k": len(TRAIN), "selection": "stratified", "seed": task.seed}
    query = Example("q", "brand new input", "neutral", "test.jsonl:1")
    first, second = predictor.request(query), predictor.request(query)
    assert sorted(first.demo_ids) == sorted(ids(TRAIN))
    # One shared set: the same demos, in the same order, for every input.
    other = predictor.request(Example("q2", "something else", "neutral", "test.jsonl:2"))
    assert first.demo_ids == second.demo_ids == other.demo_ids


# ---- similar (BM25) ------------------------------------------------------------------------


def test_similar_puts_the_nearest_neighbour_last() -> None:
    train = examples(
        [
            ("red green blue", "a"),
            ("zebra apple", "b"),
            ("zebra quantum flux", "c"),
            ("car bus train", "a"),
        ]
    )
    demos = similar_demos(train, 2)("quantum zebra")
    assert [d.input for d in demos] == ["zebra apple", "zebra quantum flux"]


def test_similar_finds_the_training_input_sharing_rare_words() -> None:
    choose = similar_demos(TRAIN, 3)
    demos = choose("does the blender come with an english manual")
    assert len(demos) == 3
    assert demos[-1].input == "the manual is in english"
    assert {d.input for d in demos[:-1]} & {"I love this blender", "it is a blender"}


def test_similar_depends_on_the_query() -> None:
    choose = similar_demos(TRAIN, 1)
    assert choose("the lid cracked open")[0].input == "the lid cracked"
    assert choose("arrived late on tuesday")[0].input == "arrived on tuesday"


@pytest.mark.parametrize("query", ["comes in a box", "  comes in a box  "])
def test_similar_never_uses_the_query_itself_as_a_demo(query: str) -> None:
    demos = similar_demos(TRAIN, 3)(query)
    assert len(demos) == 3
    assert "comes in a box" not in [d.input for d in demos]


def test_similar_with_k_equal_to_train_still_excludes_the_query() -> None:
    demos = similar_demos(TRAIN, len(TRAIN))("it is a blender")
    assert "it is a blender" not in [d.input for d in demos]
    assert len(demos) == len(TRAIN) - 1


def test_similar_survives_a_query_with_no_known_words() -> None:
    demos = similar_demos(TRAIN, 3)("xyzzy plugh frobnicate")
    assert len(demos) <= 3
    assert set(ids(demos)) <= set(ids(TRAIN))
