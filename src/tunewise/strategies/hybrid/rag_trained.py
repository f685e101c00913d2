"""Step 4 of the framework: a fine-tuned model (format, style, domain terms) plus RAG (facts).

Composes the two arms, no inheritance: the rag predictor builds every prompt, and the lora
training code trains an adapter on exactly those prompts (`rag-trained`, the default, so the
model learns to use passages) or on the short prompt (`plain`, the lora candidate's adapter when
its settings match, since adapters are cached by content).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from tunewise.core.progress import Progress
from tunewise.models.backend import Backend
from tunewise.retrieval.index import Index
from tunewise.strategies.few_shot.demos import stratified_demos
from tunewise.strategies.hybrid import HybridCandidate
from tunewise.strategies.lora.adapter import (
    Prompt,
    distilled,
    local_model,
    short_prompt,
    train_adapter_for,
)
from tunewise.strategies.rag.rerank import reranker
from tunewise.strategies.rag.retrieving import (
    RagPredictor,
    answering,
    index_record,
    require_index,
    retrieval_params,
)
from tunewise.task.config import Task
from tunewise.task.data import Example


def prepare(
    task: Task,
    spec: HybridCandidate,
    train: Sequence[Example],
    backend: Backend,
    name: str,
    progress: Progress | None = None,
    index: Index | None = None,
) -> RagPredictor:
    base = local_model(backend, spec, name)
    index = require_index(index, name)
    if "max_length" not in spec.model_fields_set:  # room for the passages it is trained with
        answer = task.max_new_tokens or 0
        spec = spec.model_copy(update={"max_length": spec.context_tokens + answer})
    demos = stratified_demos(train, spec.demos, task.seed) if spec.demos else []
    # The base model reranks, in training and serving alike: the adapter learns to read the
    # very passages it is shown.
    rerank = reranker(base, spec.rerank)
    rag = RagPredictor(name, spec.strategy, base, task.contract, index, spec, demos, rerank=rerank)
    retrieval = retrieval_params(spec, index, demos)
    if spec.adapter == "rag-trained":
        prompt: Prompt = lambda example: rag.request(example).messages  # noqa: E731
        recipe = {"prompt": "rag", **retrieval}
    else:
        prompt, recipe = short_prompt(task), {"prompt": "short"}
    # With a teacher, the adapter trains on its labels; the serving demos stay human-labelled.
    train, teacher, distillation = distilled(task, spec, train, base, name, progress)
    adapter = train_adapter_for(
        task, spec, base, train, prompt, {**recipe, **teacher}, name, progress
    )
    setup = adapter.setup(task, distillation)
    tuned = replace(
        rag,
        backend=adapter.model(base, spec.strategy),
        params={**adapter.params(base), **retrieval, "adapter_recipe": spec.adapter, **teacher},
        setup=replace(
            setup, seconds=setup.seconds + index.build_seconds, index=index_record(index)
        ),
    )
    return answering(task, tuned, train, name, progress)
