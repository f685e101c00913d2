"""One module per approach; each exposes
prepare(task, spec, train, backend, name, progress[, index]) -> Predictor;
the retrieving ones (rag, hybrid) also take the run's document index."""

from __future__ import annotations

from collections.abc import Callable

from tunewise.strategies import few_shot, hybrid, lora, optimized_prompt, rag, zero_shot
from tunewise.strategies.predictor import Predictor

Prepare = Callable[..., Predictor]

PREPARERS: dict[str, Prepare] = {
    "zero-shot": zero_shot.prepare,
    "few-shot": few_shot.prepare,
    "optimized-prompt": optimized_prompt.prepare,
    "rag": rag.prepare,
    "lora": lora.prepare,
    "qlora": lora.prepare,
    "hybrid": hybrid.prepare,
}


__all__ = ["PREPARERS", "Predictor"]
