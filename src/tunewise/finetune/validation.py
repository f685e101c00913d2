"""The validation checks of a training run: the loss on the held-out slice, a point of the loss
curve, the best weights kept, and early stopping.

Under several processes each one scores its share of the validation slice and the sums are
all-reduced, so every process sees the same loss and takes the same early-stopping decision;
the training loss of a curve point is the mean over the processes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunewise.finetune.batches import collate, completion_loss
from tunewise.finetune.checkpoints import TrainingState, save_adapter
from tunewise.finetune.examples import IGNORE, TrainingSequence


def validation_loss(
    accelerator: Any,
    model: Any,
    validation: Sequence[TrainingSequence],
    batch_size: int,
    pad_id: int,
    prefix: int,
) -> float:
    """Mean loss per target token over the validation slice. The forward passes go to the
    unwrapped model: a DDP wrapper would sync buffers on every call, and the processes make
    different numbers of calls."""
    import torch

    model = accelerator.unwrap_model(model)
    model.eval()
    rank, processes = accelerator.process_index, accelerator.num_processes
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(rank * batch_size, len(validation), batch_size * processes):
            chunk = validation[start : start + batch_size]
            batch = {k: v.to(accelerator.device) for k, v in collate(chunk, pad_id, prefix).items()}
            count = int((batch["labels"] != IGNORE).sum())
            total += float(completion_loss(model, batch)) * count
            tokens += count
    if processes > 1:
        total, tokens = _summed(accelerator, total, tokens)
    return total / max(tokens, 1)


def _summed(accelerator: Any, *values: float) -> list[float]:
    import torch

    local = torch.tensor(values, dtype=torch.float64, device=accelerator.device)
    return [float(v) for v in accelerator.reduce(local, reduction="sum")]


def record_check(
    state: TrainingState,
    loss: float,
    steps_per_epoch: int,
    patience: int,
    accelerator: Any,
    model: Any,
    work: Path,
) -> None:
    """Record a curve point; keep the best weights; stop after `patience` checks without gain."""
    train_loss = sum(state.pending_losses or []) / max(1, len(state.pending_losses or []))
    if accelerator.num_processes > 1:
        train_loss = _summed(accelerator, train_loss)[0] / accelerator.num_processes
    state.pending_losses = []
    point = {
        "step": state.step,
        "epoch": round(state.step / steps_per_epoch, 3),
        "train_loss": round(train_loss, 5),
        "validation_loss": round(loss, 5),
    }
    state.curve = [*(state.curve or []), point]
    if loss < state.best_loss - 1e-4:
        state.best_loss, state.best_step = loss, state.step
        state.evaluations_without_improvement = 0
        save_adapter(accelerator, model, work / "best")
    else:
        state.evaluations_without_improvement += 1
        if state.evaluations_without_improvement >= patience:
            state.stopped_early = True
