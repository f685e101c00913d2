"""Step 3 of the framework: an adapter trained on the train split, by the PEFT method the
strategy's record names (LoRA, QLoRA, or a plugin's; see core/training_method.py).

The adapter answers with the short prompt (contract system prompt + input, no demos), so its
tokens per request are a fraction of few-shot's. Adapters are cached by a content hash of
(base weights, training data, prompt, hyperparameters, code version): a re-run trains nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.core.catalog import strategy_named
from tunewise.core.keys import cache_key
from tunewise.core.progress import Progress
from tunewise.core.setup import Distillation, Setup, Training
from tunewise.core.specs import FineTuningOptions
from tunewise.core.training_method import TrainingMethod
from tunewise.core.version import __version__
from tunewise.errors import CandidateSkipped, TunewiseError
from tunewise.finetune.examples import (
    encode_example,
    lint_sequences,
    lint_template,
    training_messages,
)
from tunewise.finetune.train import TRAINING_LOOP, TrainingConfig, optimizer_steps
from tunewise.finetune.trainers import Trainer, TrainingJob, trainer_for
from tunewise.inference.predictor import PromptPredictor
from tunewise.inference.prompts import build_messages, system_prompt
from tunewise.models.backend import Backend, Message
from tunewise.models.local import LocalModel
from tunewise.strategies.lora import LoraCandidate
from tunewise.strategies.lora.teacher import teacher_labels
from tunewise.task.config import Task
from tunewise.task.data import Example, examples_hash
from tunewise.task.training_split import training_split

Prompt = Callable[[Example], list[Message]]


@dataclass(frozen=True)
class Adapter:
    """A trained (or cached) adapter and its training record."""

    folder: Path
    record: dict[str, Any]
    cached: bool
    train_examples: int
    config: TrainingConfig

    def model(self, base: LocalModel, strategy: str) -> LocalModel:
        """The base model with this adapter merged in; its spec names the adapter."""
        label = f"{base.spec}+{strategy}:{self.folder.name[:12]}"
        return LocalModel(label, base.folder, base.home, adapter=self.folder, dtype=base.dtype)

    def params(self, base: LocalModel) -> dict[str, Any]:
        return {
            "base_model": base.spec,
            "adapter": self.folder.name,
            "train_examples": self.train_examples,
            **config_summary(self.config),
        }

    def setup(self, task: Task, distillation: Distillation | None) -> Setup:
        """Training (and the teacher's labelling, for a distilled student) as setup."""
        price = task.prices.compute_usd_per_hour
        cost = None if price is None else round(self.record["seconds"] / 3600 * price, 6)
        teacher = distillation.seconds if distillation else 0.0
        return Setup(
            seconds=self.record["seconds"] + teacher,
            training=Training(**{**self.record, "cached": self.cached, "cost_usd": cost}),
            distillation=distillation,
            adapter=self.folder,
        )


def training_method(spec: FineTuningOptions) -> TrainingMethod:
    """The PEFT method of the candidate's strategy, from its record."""
    method = strategy_named(spec.strategy).trainer
    if method is None:
        raise TunewiseError(f"strategy '{spec.strategy}' names no trainer in its record")
    return method


def local_model(backend: Backend, spec: FineTuningOptions, name: str) -> LocalModel:
    """The backend as a trainable local model, or why the candidate cannot run."""
    if not isinstance(backend, LocalModel):
        raise TunewiseError(
            f"candidate '{name}': {spec.strategy} needs a local transformers model to train; "
            f"'{backend.spec}' is not one"
        )
    method = training_method(spec)
    if reason := method.unavailable():
        raise CandidateSkipped(reason)
    if not method.mergeable:  # the local backend answers with the adapter merged in
        raise CandidateSkipped(
            f"{spec.strategy}'s adapters do not merge into the base weights, and the local "
            "backend answers only with merged adapters"
        )
    return backend


def prepare(
    task: Task,
    spec: LoraCandidate,
    train: Sequence[Example],
    backend: Backend,
    name: str,
    progress: Progress | None = None,
    index: Any = None,
) -> PromptPredictor:
    """Train (or reuse) the adapter, then predict with the adapted model and the short prompt.
    With a teacher, the adapter trains on the teacher's labels instead of the human ones."""
    base = local_model(backend, spec, name)
    train, recipe, distillation = distilled(task, spec, train, base, name, progress)
    adapter = train_adapter_for(
        task, spec, base, train, short_prompt(task), {"prompt": "short", **recipe}, name, progress
    )
    return PromptPredictor(
        name,
        spec.strategy,
        adapter.model(base, spec.strategy),
        task.contract,
        lambda _: (),
        params={**adapter.params(base), **recipe},
        setup=adapter.setup(task, distillation),
    )


def distilled(
    task: Task,
    spec: FineTuningOptions,
    train: Sequence[Example],
    base: LocalModel,
    name: str,
    progress: Progress | None,
) -> tuple[Sequence[Example], dict[str, Any], Distillation | None]:
    """Without a teacher: the human-labelled train split, unchanged. With one: the teacher's
    filtered labels, the recipe entry that keys the adapter apart from a human-trained one, and
    the distillation record for setup."""
    if spec.teacher is None:
        return train, {}, None
    labelled, record = teacher_labels(task, spec, train, base, name, progress)
    return labelled, {"teacher": spec.teacher}, Distillation(**record)


def short_prompt(task: Task) -> Prompt:
    """The contract system prompt and the input: what a plain adapter is trained and served on."""
    return lambda example: build_messages(task.contract, example.input)


def train_adapter_for(
    task: Task,
    spec: FineTuningOptions,
    base: LocalModel,
    train: Sequence[Example],
    prompt: Prompt,
    recipe: dict[str, Any],
    name: str,
    progress: Progress | None,
) -> Adapter:
    """Train on `prompt(example)` + answer for a seeded split of train, or reuse the adapter
    cached under the same content key. `recipe` names how prompt() builds its messages."""
    fit, validation = training_split(
        train, task.contract.output_format, max_examples=spec.max_train_examples,
        validation_fraction=spec.validation_fraction, seed=task.seed,
    )  # fmt: skip
    config = TrainingConfig.from_candidate(
        spec, task.seed, training_method(spec), bf16=base.dtype == "bfloat16"
    )
    trainer = trainer_for(task.training)
    key = adapter_key(task, base, fit, validation, config, spec.max_length, recipe, trainer)
    folder = base.home / "adapters" / key
    cached = (folder / "training.json").exists()
    if cached:
        record = json.loads((folder / "training.json").read_text())
    else:
        work = (base, fit, validation, config, folder)
        record = _train(trainer, spec, work, prompt, name, progress)
    return Adapter(folder, record, cached, len(fit), config)


def config_summary(config: TrainingConfig) -> dict[str, Any]:
    return {
        "r": config.r,
        "alpha": config.alpha,
        "learning_rate": config.learning_rate,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "bf16_autocast": config.bf16,
    }


def adapter_key(
    task: Task,
    backend: LocalModel,
    fit: Sequence[Example],
    validation: Sequence[Example],
    config: TrainingConfig,
    max_length: int,
    recipe: dict[str, Any],
    trainer: Trainer | None = None,
) -> str:
    """sha256 of everything that decides the adapter's weights: with several processes, their
    number too (it sets the global batch); one process keys as it always has."""
    processes = trainer.processes if trainer else 1
    return cache_key(
        **({"processes": processes} if processes > 1 else {}),
        base=backend.fingerprint(),
        data=examples_hash(fit, validation),
        prompt=system_prompt(task.contract),
        recipe=recipe,
        config=config.__dict__,
        max_length=max_length,
        code=__version__,
        loop=TRAINING_LOOP,
    )


def _train(
    trainer: Trainer,
    spec: FineTuningOptions,
    work: tuple[LocalModel, list[Example], list[Example], TrainingConfig, Path],
    prompt: Prompt,
    name: str,
    progress: Progress | None,
) -> dict[str, Any]:
    backend, fit, validation, config, folder = work
    prompts = {e.id: prompt(e) for e in [*fit, *validation]}
    lint_template(backend, prompts[fit[0].id], fit[0])
    encoded = [encode_example(backend, prompts[e.id], e) for e in fit]
    kept = [s for s in encoded if len(s.input_ids) <= spec.max_length]
    held = [encode_example(backend, prompts[e.id], e) for e in validation]
    held = [s for s in held if len(s.input_ids) <= spec.max_length]
    lint_sequences(kept + held, backend.tokenizer.eos_token_id)
    steps = optimizer_steps(len(kept), config, trainer.processes) * config.epochs
    advance = progress.stage(f"{name} train", steps) if progress else None
    # The exact conversations trained on, for `tunewise export --format openai-jsonl`.
    conversations = {
        f"{split}.messages.jsonl": "".join(
            json.dumps({"messages": training_messages(prompts[e.id], e)}, ensure_ascii=False) + "\n"
            for e in examples
        )
        for split, examples in (("train", fit), ("validation", validation))
    }
    job = TrainingJob(
        backend.folder,
        kept,
        held,
        config,
        folder,
        folder.with_name(folder.name + ".work"),
        backend.tokenizer.pad_token_id,
        notes={"left_out_too_long": len(encoded) - len(kept)},
        extra_files=conversations,
    )
    return trainer.train(job, advance or (lambda n: None))
