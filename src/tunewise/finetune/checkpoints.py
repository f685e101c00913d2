"""Checkpoints of a LoRA training run: each one complete or absent, so a killed run resumes from
the last one with the same optimizer, scheduler and random state."""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class TrainingState:
    """Everything a checkpoint must restore besides the weights and optimizer."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    tokens: int = 0
    seconds: float = 0.0
    best_loss: float = math.inf
    best_step: int = 0
    evaluations_without_improvement: int = 0
    stopped_early: bool = False
    resumed_from_step: int = 0
    curve: list[dict[str, float]] | None = None
    pending_losses: list[float] | None = None


def save_adapter(accelerator: Any, model: Any, folder: Path) -> None:
    """Save adapter weights to `folder` atomically (a sibling temp folder, then a swap)."""
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    accelerator.unwrap_model(model).save_pretrained(staging)
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        os.replace(folder, old)
    os.replace(staging, folder)
    shutil.rmtree(old, ignore_errors=True)


def checkpoint(
    state: TrainingState, accelerator: Any, model: Any, optimizer: Any, scheduler: Any, work: Path
) -> None:
    """Write checkpoint-<step>/ (adapter + state) under a temporary name, rename it into place,
    then drop older ones: a kill at any moment leaves at least one complete checkpoint. Rank 0
    writes it all, the random state of every process included (dropout draws differ by rank)."""
    import torch
    from accelerate.utils import gather_object

    staging = work / f"checkpoint-{state.step}.tmp"
    save_adapter(accelerator, model, staging / "adapter")
    rng = [torch.get_rng_state()]
    by_process = gather_object(rng) if accelerator.num_processes > 1 else rng
    if accelerator.is_main_process:
        saved = {
            "state": asdict(state),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": rng[0],
            "torch_rng_by_process": by_process,
        }
        torch.save(saved, staging / "state.pt")
        os.replace(staging, work / f"checkpoint-{state.step}")
        for older in checkpoints(work)[:-1]:
            shutil.rmtree(older, ignore_errors=True)
    accelerator.wait_for_everyone()


def checkpoints(work: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    found = [p for p in work.glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[11:]))


def resume(
    work: Path, accelerator: Any, model: Any, optimizer: Any, scheduler: Any
) -> TrainingState:
    """Restore the last checkpoint if a killed run left one; else a fresh state."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    found = checkpoints(work) if work.exists() else []
    if not found:
        return TrainingState(curve=[], pending_losses=[])
    folder = found[-1]
    saved = torch.load(folder / "state.pt", weights_only=False)
    weights = load_file(folder / "adapter" / "adapter_model.safetensors")
    set_peft_model_state_dict(accelerator.unwrap_model(model), weights)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    by_process = saved.get("torch_rng_by_process") or []
    same_processes = len(by_process) == accelerator.num_processes
    torch.set_rng_state(
        by_process[accelerator.process_index] if same_processes else saved["torch_rng"]
    )
    state = TrainingState(**saved["state"])
    state.resumed_from_step = state.step
    return state
