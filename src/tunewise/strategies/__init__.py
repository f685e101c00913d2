"""One module per approach; each exposes prepare(task, spec, train, backend, name) -> Predictor."""

from __future__ import annotations

from collections.abc import Callable

from tunewise.strategies import few_shot, zero_shot
from tunewise.strategies.predictor import Predictor

Prepare = Callable[..., Predictor]

PREPARERS: dict[str, Prepare] = {
    "zero-shot": zero_shot.prepare,
    "few-shot": few_shot.prepare,
}


def register_strategy(name: str, prepare: Prepare) -> None:
    """Add a strategy; a name registers once."""
    if name in PREPARERS:
        raise ValueError(f"strategy '{name}' is already registered")
    PREPARERS[name] = prepare


__all__ = ["PREPARERS", "Predictor", "register_strategy"]
