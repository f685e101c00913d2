"""What the fine-tuning server asks of a trainer (a small Protocol, so tests inject a fast fake),
the OpenAI hyperparameters mapped onto tunewise's, and the trainer that runs tunewise's own
adapter training (finetune/train.py) on whatever device this machine has.

A chat example trains on its last turn: the prompt is every message before the assistant's
answer, rendered with the model's chat template exactly as a chat completion renders it, and
only the answer's tokens (and the end-of-turn) carry loss.
"""

from __future__ import annotations

import gc
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tunewise.core.specs import FineTuningOptions
from tunewise.fine_tuning_server.files import Conversation
from tunewise.finetune.checkpoints import checkpoints
from tunewise.finetune.examples import (
    TrainingSequence,
    encode_example,
    lint_sequences,
    lint_template,
)
from tunewise.finetune.train import TrainingConfig, train_adapter
from tunewise.inference.chat_api import ApiError
from tunewise.models.local import LocalModel
from tunewise.strategies.lora import LORA
from tunewise.task.data import Example

_DEFAULTS = FineTuningOptions.model_fields
BASE_LEARNING_RATE: float = _DEFAULTS["learning_rate"].default  # x learning_rate_multiplier
DEFAULT_EPOCHS: int = _DEFAULTS["epochs"].default
DEFAULT_BATCH_SIZE: int = _DEFAULTS["batch_size"].default
VALIDATION_FRACTION: float = _DEFAULTS["validation_fraction"].default
LIMITS = {"n_epochs": (1, 50), "batch_size": (1, 256), "learning_rate_multiplier": (1e-3, 10.0)}
AUTO = {
    "n_epochs": DEFAULT_EPOCHS,
    "batch_size": DEFAULT_BATCH_SIZE,
    "learning_rate_multiplier": 1.0,
}


def resolve_hyperparameters(given: dict[str, Any] | None) -> dict[str, Any]:
    """n_epochs, batch_size and learning_rate_multiplier, "auto" (or absent) as tunewise's
    defaults; anything else named is an error naming the field."""
    given = dict(given or {})
    if unknown := sorted(set(given) - set(AUTO)):
        raise ApiError(
            400, f"unknown hyperparameter(s) {', '.join(unknown)}; use {', '.join(AUTO)}",
            "invalid_hyperparameters", f"hyperparameters.{unknown[0]}",
        )  # fmt: skip
    resolved: dict[str, Any] = {}
    for name, default in AUTO.items():
        value = given.get(name, "auto")
        value = default if value in ("auto", None) else value
        low, high = LIMITS[name]
        kind = float if name == "learning_rate_multiplier" else int
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or (kind is int and value != int(value)) or not low <= value <= high:
            raise ApiError(
                400, f"hyperparameters.{name} must be 'auto' or a {kind.__name__} from {low} "
                f"to {high}; got {value!r}", "invalid_hyperparameters", f"hyperparameters.{name}",
            )  # fmt: skip
        resolved[name] = kind(value)
    return resolved


def learning_rate(hyperparameters: dict[str, Any]) -> float:
    """tunewise's learning rate (that of the lora strategy) times the job's multiplier."""
    return BASE_LEARNING_RATE * float(hyperparameters["learning_rate_multiplier"])


def hold_out(
    examples: Sequence[Conversation], seed: int, fraction: float = VALIDATION_FRACTION
) -> tuple[list[Conversation], list[Conversation]]:
    """Without a validation file: a seeded slice of the training examples for early stopping,
    as tunewise's own fine-tuning holds one out (none from a single example)."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = min(len(examples) - 1, max(1, round(len(examples) * fraction)))
    chosen = set(order[:held])
    train = [e for i, e in enumerate(examples) if i not in chosen]
    return train, [e for i, e in enumerate(examples) if i in chosen]


@dataclass(frozen=True)
class TrainingJob:
    """One job as the trainer sees it; `work` keeps its checkpoints, `out` gets the adapter."""

    job_id: str
    train: list[Conversation]
    validation: list[Conversation]
    hyperparameters: dict[str, Any]  # resolved: n_epochs, batch_size, learning_rate_multiplier
    seed: int
    out: Path
    work: Path


@dataclass(frozen=True)
class TrainingOutcome:
    trained_tokens: int
    steps: int
    resumed_from_step: int
    loss_curve: list[dict[str, float]]
    left_out: int = 0  # examples longer than the trainer's max length


class TrainingHooks(Protocol):
    """What the worker hears during training; `progress` raises to stop at a step boundary."""

    def progress(self, step: int, total: int) -> None: ...

    def metrics(self, point: dict[str, float], total: int) -> None: ...

    def checkpoint(self, step: int, adapter: Path, metrics: dict[str, float]) -> None: ...


class Trainer(Protocol):
    """Trains an adapter for a job into job.out, resuming from job.work where a killed run left
    checkpoints there."""

    def train(self, job: TrainingJob, hooks: TrainingHooks) -> TrainingOutcome: ...


def outcome_of(record: dict[str, Any]) -> TrainingOutcome:
    return TrainingOutcome(
        trained_tokens=int(record["tokens_trained"]),
        steps=int(record["steps"]),
        resumed_from_step=int(record.get("resumed_from_step", 0)),
        loss_curve=list(record.get("loss_curve", [])),
        left_out=int(record.get("left_out_too_long", 0)),
    )


class LocalTrainer:
    """tunewise's adapter training (LoRA, the lora strategy's method and defaults) of `base`;
    `options` are FineTuningOptions fields the server fixes for every job (checkpoint_every,
    max_length, r, ...)."""

    def __init__(self, base: LocalModel, options: dict[str, Any] | None = None) -> None:
        # Its own tokenizer: the answering thread uses the served model's at the same time.
        self.base = LocalModel(base.spec, base.folder, base.home, dtype=base.dtype)
        self.options = dict(options or {})
        FineTuningOptions(strategy="fine-tuning-server", **self.options)  # fail at start

    def train(self, job: TrainingJob, hooks: TrainingHooks) -> TrainingOutcome:
        if (job.out / "training.json").exists():  # finished before a restart
            return outcome_of(json.loads((job.out / "training.json").read_text()))
        spec = FineTuningOptions(
            strategy="fine-tuning-server",
            **{
                **self.options,
                "epochs": job.hyperparameters["n_epochs"],
                "batch_size": job.hyperparameters["batch_size"],
                "learning_rate": learning_rate(job.hyperparameters),
            },
        )
        config = TrainingConfig.from_candidate(
            spec, job.seed, LORA, bf16=self.base.dtype == "bfloat16"
        )
        train, left_out = self._encode(job.train, spec.max_length, "train")
        held, _ = self._encode(job.validation, spec.max_length, "validation")
        lint_sequences(train + held, self.base.tokenizer.eos_token_id)
        steps = math.ceil(math.ceil(len(train) / config.batch_size) / config.gradient_accumulation)
        watch = _Watch(job.work, hooks, steps * config.epochs)
        try:
            record = train_adapter(
                self.base.folder, train, held, config, job.out, job.work,
                self.base.tokenizer.pad_token_id, advance=watch.advance,
                notes={"left_out_too_long": left_out},
            )  # fmt: skip
        finally:
            free_memory()
        for point in record["loss_curve"][watch.reported :]:
            hooks.metrics(point, watch.total)
        return outcome_of(record)

    def _encode(
        self, conversations: Sequence[Conversation], max_length: int, split: str
    ) -> tuple[list[TrainingSequence], int]:
        """Training sequences of the examples that fit max_length; how many did not."""
        encoded = []
        for number, messages in enumerate(conversations, start=1):
            example = Example(f"{split}-{number}", "", messages[-1]["content"], split)
            if number == 1:
                lint_template(self.base, messages[:-1], example)
            encoded.append(encode_example(self.base, messages[:-1], example))
        kept = [s for s in encoded if len(s.input_ids) <= max_length]
        return kept, len(encoded) - len(kept)


class _Watch:
    """The trainer's step callback: progress for every step, and for each checkpoint the
    trainer writes, its loss-curve points and a copy of its adapter."""

    def __init__(self, work: Path, hooks: TrainingHooks, total: int) -> None:
        self.work, self.hooks, self.total = work, hooks, total
        self.step = 0
        self.reported = 0  # loss-curve points already told
        self.seen = {p.name for p in checkpoints(work)} if work.exists() else set()

    def advance(self, steps: int) -> None:
        self.step += steps
        for folder in checkpoints(self.work) if self.work.exists() else []:
            if folder.name not in self.seen:
                self.seen.add(folder.name)
                self._checkpoint(folder)
        self.hooks.progress(self.step, self.total)

    def _checkpoint(self, folder: Path) -> None:
        import torch

        state = torch.load(folder / "state.pt", weights_only=False)["state"]
        curve = state.get("curve") or []
        for point in curve[self.reported :]:
            self.hooks.metrics(point, self.total)
        self.reported = max(self.reported, len(curve))
        metrics = {"step": state["step"]}
        if curve:
            last = curve[-1]
            metrics |= {"train_loss": last["train_loss"], "valid_loss": last["validation_loss"]}
        self.hooks.checkpoint(int(state["step"]), folder / "adapter", metrics)


def free_memory() -> None:
    """Give a dropped model's memory back (to the GPU, where there is one)."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
