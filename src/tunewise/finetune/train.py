"""The adapter training recipe, top to bottom: set up, train with early stopping, save the
adapter. The PEFT method (LoRA, QLoRA, a plugin's) comes from the strategy's record as a
TrainingMethod; this loop never asks for one by name.

Everything goes through Hugging Face accelerate, so the same function runs on one CPU, one GPU,
or under `accelerate launch` on several GPUs (DDP, FSDP, DeepSpeed configs). Checkpoints are
written every few steps, atomically, and a killed run resumes from the last one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tunewise.core.training_method import TrainingMethod, lora_settings, peft_config
from tunewise.finetune.batches import (
    collate,
    completion_loss,
    length_grouped_batches,
    process_parts,
    shared_prefix,
    spread,
)
from tunewise.finetune.checkpoints import TrainingState, checkpoint, resume, save_adapter
from tunewise.finetune.examples import TrainingSequence
from tunewise.finetune.training_record import overfitting as overfitting
from tunewise.finetune.training_record import training_record
from tunewise.finetune.validation import record_check, validation_loss

Advance = Callable[[int], None]
# Part of every adapter's cache key: bump when the loop changes which weights a seed produces
# (2: LoRA dropout drawn as geometric gaps on CPU; 3: the shared prompt prefix computed once per
# batch, eager attention on CPU), so an adapter of the old loop is not reused.
TRAINING_LOOP = 3


@dataclass(frozen=True)
class TrainingConfig:
    """Hyperparameters of one adapter; their JSON is part of the adapter's cache key."""

    r: int
    alpha: int
    dropout: float
    target_modules: list[str] | str
    learning_rate: float
    scheduler: str
    warmup_ratio: float
    epochs: int
    batch_size: int
    gradient_accumulation: int
    evaluations_per_epoch: int
    early_stopping_patience: int
    checkpoint_every: int
    seed: int
    quantize_4bit: bool
    bf16: bool = False  # bfloat16 autocast, where the run's dtype is bfloat16
    peft: dict[str, Any] | None = None  # the method's PEFT config arguments (None: LoRA's)
    shared_prefix: bool = True  # the method allows computing a batch's shared prefix once

    @classmethod
    def from_candidate(
        cls, spec: Any, seed: int, method: TrainingMethod, *, bf16: bool = False
    ) -> TrainingConfig:
        """`spec`: a fine-tuning candidate's settings (FineTuningOptions)."""
        fields = {
            name: getattr(spec, name) for name in cls.__dataclass_fields__ if hasattr(spec, name)
        }
        return cls(
            **fields,
            seed=seed,
            quantize_4bit=method.quantize_4bit,
            bf16=bf16,
            peft=method.peft_arguments(spec),
            shared_prefix=method.shared_prefix_safe,
        )

    def peft_arguments(self) -> dict[str, Any]:
        """What peft builds the adapter from: the method's arguments, else LoRA from r, alpha,
        dropout and target_modules (a config saved before methods were records)."""
        if self.peft is not None:
            return self.peft
        return {"peft_type": "LORA", "task_type": "CAUSAL_LM", **lora_settings(self)}


def _load_model(base_folder: Path, config: TrainingConfig) -> Any:
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from tunewise.finetune.dropout import use_sparse_dropout
    from tunewise.models.local import contiguous_head_input

    # On CPU, eager attention trains faster than torch's SDPA kernels at these lengths (1.1x a
    # step in float32, 1.4x in bf16 on the embedded model); GPUs keep SDPA.
    cpu = not torch.cuda.is_available()
    kwargs: dict[str, Any] = {"dtype": torch.float32} | (
        {"attn_implementation": "eager"} if cpu else {}
    )
    if config.quantize_4bit:
        from transformers import BitsAndBytesConfig

        kwargs = {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=torch.bfloat16,
                bnb_4bit_use_double_quant=True,
            ),
            "device_map": {"": torch.cuda.current_device()},
        }
    model = AutoModelForCausalLM.from_pretrained(base_folder, **kwargs)
    if config.quantize_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    model = get_peft_model(model, peft_config(config.peft_arguments()))
    if config.bf16 and not config.quantize_4bit:
        _frozen_linears_in_bf16(model)
    use_sparse_dropout(model)
    contiguous_head_input(model)
    return model


def _frozen_linears_in_bf16(model: Any) -> None:
    """Store the frozen linear weights in bfloat16: autocast would round them to bf16 on every
    forward call anyway (it caches casts only of weights that train), so the numbers are the
    same and the casts are gone. LoRA weights, norms and embeddings stay float32, and so does
    an output projection tied to the embeddings."""
    import torch

    tied = model.get_output_embeddings().weight
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, torch.nn.Linear) and not weight.requires_grad and weight is not tied:
            module.weight.data = weight.data.to(torch.bfloat16)


@dataclass(frozen=True)
class _Run:
    """One training's moving parts, set up once: what every step and check uses."""

    accelerator: Any
    model: Any
    optimizer: Any
    scheduler: Any
    config: TrainingConfig
    train: Sequence[TrainingSequence]
    validation: Sequence[TrainingSequence]
    pad_id: int
    prefix: int  # tokens of the prompt prefix every sequence shares, computed once per batch
    steps_per_epoch: int
    work: Path

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs


def train_adapter(
    base_folder: Path,
    train: Sequence[TrainingSequence],
    validation: Sequence[TrainingSequence],
    config: TrainingConfig,
    out: Path,
    work: Path,
    pad_id: int,
    advance: Advance = lambda n: None,
    notes: Mapping[str, Any] | None = None,
    extra_files: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Train a LoRA adapter, keep the weights of the best validation loss, save them to `out`
    with training.json (the record, plus `notes`) and `extra_files` (name -> text).

    `out` appears complete or not at all. `work` holds checkpoints; a run that finds one there
    resumes from it. Returns the record."""
    run = _set_up(base_folder, train, validation, config, work, pad_id)
    state = resume(work, run.accelerator, run.model, run.optimizer, run.scheduler)
    advance(state.step)
    started = time.perf_counter() - state.seconds
    while state.epoch < config.epochs and not state.stopped_early:
        _train_epoch(run, state, advance, started)
    state.seconds = time.perf_counter() - started
    record = training_record(
        state, run.accelerator, run.model, asdict(config), train, validation, run.steps_per_epoch
    )
    record |= {"shared_prefix_tokens": run.prefix, **(notes or {})}
    _publish(record, run.accelerator, run.model, out, work, extra_files or {})
    return record


def _set_up(
    base_folder: Path,
    train: Sequence[TrainingSequence],
    validation: Sequence[TrainingSequence],
    config: TrainingConfig,
    work: Path,
    pad_id: int,
) -> _Run:
    """The seeded model with its adapter, the optimizer and scheduler, prepared by accelerate."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration
    from transformers import get_scheduler

    # split_batches: the loop deals each process its part of a global batch itself, so the
    # scheduler steps once per optimizer step, not once per process (accelerate's default).
    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )
    torch.manual_seed(config.seed)
    model = _load_model(base_folder, config)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.learning_rate
    )
    steps_per_epoch = _steps_per_epoch(train, config, accelerator)
    total_steps = steps_per_epoch * config.epochs
    scheduler = get_scheduler(
        config.scheduler,
        optimizer,
        num_warmup_steps=round(config.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    # Where the method allows it (a method that prepends virtual tokens changes the prefix). Under
    # DDP too: the prefix's forward call and the rows' share one backward, so each weight's
    # gradient (both parts summed) is all-reduced once.
    prefix = shared_prefix([*train, *validation]) if config.shared_prefix else 0
    return _Run(
        accelerator, model, optimizer, scheduler, config, train, validation, pad_id, prefix,
        steps_per_epoch, work,
    )  # fmt: skip


def _train_epoch(run: _Run, state: TrainingState, advance: Advance, started: float) -> None:
    """The rest of the current epoch: a step per batch, a validation check every few steps
    (which may stop training early), a checkpoint every few more."""
    config, accelerator = run.config, run.accelerator
    evaluate_every = max(1, run.steps_per_epoch // config.evaluations_per_epoch)
    for batch in _epoch_batches(run, state):
        loss = _train_step(run, batch)
        state.batch_in_epoch += 1
        state.tokens += batch["tokens"]
        state.pending_losses.append(float(loss.detach()))
        if not accelerator.sync_gradients:
            continue
        state.step += 1
        advance(1)
        if state.step % evaluate_every == 0 or state.step == run.total_steps:
            loss_now = _checked_loss(run)
            patience = config.early_stopping_patience
            record_check(
                state, loss_now, run.steps_per_epoch, patience, accelerator, run.model, run.work
            )
            if state.stopped_early:
                return
        if state.step % config.checkpoint_every == 0:
            state.seconds = time.perf_counter() - started
            checkpoint(state, accelerator, run.model, run.optimizer, run.scheduler, run.work)
    state.epoch += 1
    state.batch_in_epoch = 0


def _epoch_batches(run: _Run, state: TrainingState) -> Any:
    """This process's part of each of the epoch's length-grouped global batches (batch_size
    examples a process: every process draws the same global batches, so N processes train on
    the batches one process draws at N x batch_size), less those a resumed run trained on."""
    import torch
    from accelerate.data_loader import prepare_data_loader

    config, accelerator, train = run.config, run.accelerator, run.train
    processes = accelerator.num_processes
    lengths, targets = [len(s.input_ids) for s in train], [s.target_tokens for s in train]
    batches = length_grouped_batches(
        lengths, config.batch_size * processes, config.seed, state.epoch
    )
    parts = process_parts(batches, targets, accelerator.process_index, processes)
    # Tokens the processes compute together for each batch: their rows, and the prefix once each.
    tokens = [
        sum(lengths[i] - run.prefix for i in spread(b, processes)) + run.prefix * processes
        for b in batches
    ]
    start = state.batch_in_epoch
    weights = {tuple(p): (w, t) for (p, w), t in zip(parts[start:], tokens[start:], strict=True)}
    loader = torch.utils.data.DataLoader(
        range(len(train)),
        batch_sampler=[part for part, _ in parts[start:]],
        collate_fn=lambda rows: {
            **collate([train[i] for i in rows], run.pad_id, run.prefix),
            **dict(zip(("weight", "tokens"), weights[tuple(rows)], strict=True)),
        },
        # Its own generator: drawing the loader's seed must not shift the global RNG
        # that dropout uses, or a resumed run would diverge from an uninterrupted one.
        generator=torch.Generator().manual_seed(config.seed + state.epoch),
    )
    # Already this process's part: wrapped only to place batches on the device and to tell
    # gradient accumulation where the epoch ends.
    return prepare_data_loader(loader, accelerator.device, 1, 0, put_on_device=True)


def _train_step(run: _Run, batch: Any) -> Any:
    """One forward and backward pass; the optimizer steps when accumulation is complete."""
    run.model.train()
    with run.accelerator.accumulate(run.model), _autocast(run.accelerator, run.config):
        loss = completion_loss(run.model, batch) * batch["weight"]
        run.accelerator.backward(loss)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad()
    return loss


def _checked_loss(run: _Run) -> float:
    """The validation loss now."""
    with _autocast(run.accelerator, run.config):
        return validation_loss(
            run.accelerator, run.model, run.validation, run.config.batch_size, run.pad_id,
            run.prefix,
        )  # fmt: skip


def _autocast(accelerator: Any, config: TrainingConfig) -> Any:
    """bfloat16 autocast of the forward pass when the config asks for it. torch's own context,
    not accelerate's mixed_precision: accelerate fixes that once per process, and one run may
    train adapters of both kinds."""
    import torch

    return torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=config.bf16)


def _publish(
    record: dict[str, Any],
    accelerator: Any,
    model: Any,
    out: Path,
    work: Path,
    extra_files: Mapping[str, str],
) -> None:
    """Move the best adapter, its record and extra files into `out` in one rename."""
    accelerator.wait_for_everyone()  # every process sees rank 0's last save of the best weights
    best = work / "best"
    if not best.exists():  # no validation check ran: keep the final weights
        save_adapter(accelerator, model, best)
    if accelerator.is_main_process:
        (best / "training.json").write_text(json.dumps(record, indent=2))
        for name, text in extra_files.items():
            (best / name).write_text(text, encoding="utf-8")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(out, ignore_errors=True)  # an incomplete leftover; complete ones are reused
        os.replace(best, out)
        shutil.rmtree(work, ignore_errors=True)
    accelerator.wait_for_everyone()


def _steps_per_epoch(train: Sequence[TrainingSequence], config: TrainingConfig, acc: Any) -> int:
    return optimizer_steps(len(train), config, acc.num_processes)


def optimizer_steps(examples: int, config: TrainingConfig, processes: int = 1) -> int:
    """Optimizer steps in an epoch: each process takes every `processes`-th batch."""
    batches = math.ceil(examples / config.batch_size)
    return max(1, math.ceil(math.ceil(batches / processes) / config.gradient_accumulation))
