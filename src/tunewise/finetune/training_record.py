"""What an adapter's training cost and how it went: the record that goes into training.json and
results.json, with the overfitting flag read off the loss curve."""

from __future__ import annotations

import resource
from collections.abc import Sequence
from typing import Any

from tunewise.finetune.checkpoints import TrainingState
from tunewise.finetune.examples import TrainingSequence


def training_record(
    state: TrainingState,
    accelerator: Any,
    model: Any,
    config: dict[str, Any],
    train: Sequence[TrainingSequence],
    validation: Sequence[TrainingSequence],
    steps_per_epoch: int,
) -> dict[str, Any]:
    """What training cost and how it went, for results.json (`config`: the hyperparameters)."""
    unwrapped = accelerator.unwrap_model(model)
    total = sum(p.numel() for p in unwrapped.parameters())
    curve = state.curve or []
    return {
        "seconds": round(state.seconds, 2),
        "examples": len(train),
        "validation_examples": len(validation),
        "tokens_trained": state.tokens,
        "target_tokens_per_epoch": sum(s.target_tokens for s in train),
        "steps": state.step,
        "epochs": round(state.step / steps_per_epoch, 3),
        "best_step": state.best_step,
        "best_validation_loss": round(state.best_loss, 5) if curve else None,
        "stopped_early": state.stopped_early,
        "resumed_from_step": state.resumed_from_step,
        "loss_curve": curve,
        "overfitting": overfitting(curve),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        # Forward 2N and backward 2N FLOPs per token (frozen weights get no weight gradients).
        "flops_estimate": 4 * total * state.tokens,
        "trainable_parameters": sum(p.numel() for p in unwrapped.parameters() if p.requires_grad),
        "total_parameters": total,
        "device": str(accelerator.device),
        **_peak_gpu_memory(accelerator),
        "processes": accelerator.num_processes,
        "config": config,
    }


def _peak_gpu_memory(accelerator: Any) -> dict[str, float]:
    """On CUDA, the most GPU memory torch held for tensors in this process (rank 0's)."""
    if accelerator.device.type != "cuda":
        return {}
    import torch

    return {"peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)}


def overfitting(curve: Sequence[dict[str, float]]) -> bool:
    """Validation loss rose above its minimum (by 2%) while training loss kept falling."""
    if len(curve) < 3:
        return False
    best = min(range(len(curve)), key=lambda i: curve[i]["validation_loss"])
    last = curve[-1]
    rose = last["validation_loss"] > curve[best]["validation_loss"] * 1.02
    fell = last["train_loss"] < curve[best]["train_loss"]
    return rose and fell
