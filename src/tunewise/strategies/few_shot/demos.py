"""Step 1 of the framework, second rung: k demonstrations from the training split.

`stratified` draws one seeded, label-balanced set shared by every input (its prefix is the same
for every request); `similar` picks each input's BM25 nearest neighbours in the training inputs.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from tunewise.core.progress import Progress
from tunewise.core.setup import Setup
from tunewise.inference.predictor import PromptPredictor
from tunewise.models.backend import Backend
from tunewise.strategies.few_shot import FewShotCandidate
from tunewise.task.config import Task
from tunewise.task.data import Example


def prepare(
    task: Task,
    spec: FewShotCandidate,
    train: Sequence[Example],
    backend: Backend,
    name: str,
    progress: Progress | None = None,
) -> PromptPredictor:
    start = time.perf_counter()
    k = min(spec.k, len(train))
    if spec.selection == "similar":
        choose = similar_demos(train, k)
    else:
        fixed = stratified_demos(train, k, task.seed)
        choose = lambda _: fixed  # noqa: E731 - one shared set, by design
    params = {"k": k, "selection": spec.selection, "seed": task.seed}
    setup = Setup(seconds=time.perf_counter() - start)
    return PromptPredictor(name, spec.strategy, backend, task.contract, choose, params, setup)


def stratified_demos(train: Sequence[Example], k: int, seed: int) -> list[Example]:
    """k demos (at most all of train) drawn round-robin across outputs, in a seeded order."""
    k = min(k, len(train))
    rng = random.Random(seed)
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in train:
        groups[example.output].append(example)
    pools = [groups[key] for key in sorted(groups)]
    for pool in pools:
        rng.shuffle(pool)
    rng.shuffle(pools)
    chosen: list[Example] = []
    while len(chosen) < k:
        for pool in pools:
            if pool and len(chosen) < k:
                chosen.append(pool.pop())
    rng.shuffle(chosen)
    return chosen


def similar_demos(train: Sequence[Example], k: int) -> Callable[[str], list[Example]]:
    """BM25 nearest training inputs, most similar last (closest to the question)."""
    import bm25s

    corpus = [example.input for example in train]
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(corpus, stopwords=None, show_progress=False), show_progress=False
    )

    def choose(text: str) -> list[Example]:
        # One extra hit, so an input that is also in train is never its own demo.
        wanted = min(k + 1, len(corpus))
        query = bm25s.tokenize([text], stopwords=None, show_progress=False)
        indices, _ = retriever.retrieve(query, k=wanted, show_progress=False)
        hits = [train[i] for i in indices[0] if train[i].input.strip() != text.strip()][:k]
        return hits[::-1]

    return choose
