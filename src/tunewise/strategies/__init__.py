"""One module per approach; each exposes
prepare(task, spec, train, backend, name, progress) -> Predictor."""

from __future__ import annotations

from collections.abc import Callable

from tunewise.strategies import few_shot, lora, zero_shot
from tunewise.strategies.predictor import Predictor

Prepare = Callable[..., Predictor]

PREPARERS: dict[str, Prepare] = {
    "zero-shot": zero_shot.prepare,
    "few-shot": few_shot.prepare,
    "lora": lora.prepare,
    "qlora": lora.prepare,
}


__all__ = ["PREPARERS", "Predictor"]
