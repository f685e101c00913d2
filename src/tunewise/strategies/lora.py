"""Step 3 of the framework: a LoRA (or QLoRA) adapter trained on the train split.

The adapter answers with the short prompt (contract system prompt + input, no demos), so its
tokens per request are a fraction of few-shot's. Adapters are cached by a content hash of
(base weights, training data, prompt, hyperparameters, code version): a re-run trains nothing.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunewise import __version__
from tunewise.cache import cache_key
from tunewise.data import (
    Example,
    examples_hash,
    sample_examples,
    split_examples,
    stratify_by_label,
)
from tunewise.errors import TunewiseError
from tunewise.finetune.examples import (
    encode_example,
    lint_sequences,
    lint_template,
    training_messages,
)
from tunewise.finetune.train import TrainingConfig, train_adapter
from tunewise.models.backend import Backend
from tunewise.models.local import LocalModel
from tunewise.progress import Progress
from tunewise.prompts import system_prompt
from tunewise.strategies.predictor import PromptPredictor
from tunewise.task import LoraCandidate, Task


class CandidateSkipped(TunewiseError):
    """The candidate cannot run on this machine (e.g. QLoRA without CUDA); recorded, not fatal."""


def qlora_unavailable() -> str | None:
    """Why 4-bit training cannot run here, or None when it can."""
    import torch

    if not torch.cuda.is_available():
        return "QLoRA loads the base model in 4 bits with bitsandbytes, which needs a CUDA GPU"
    if importlib.util.find_spec("bitsandbytes") is None:
        return "QLoRA needs bitsandbytes: pip install bitsandbytes"
    return None


def prepare(
    task: Task,
    spec: LoraCandidate,
    train: Sequence[Example],
    backend: Backend,
    name: str,
    progress: Progress | None = None,
) -> PromptPredictor:
    """Train (or reuse) the adapter, then predict with the adapted model and the short prompt."""
    if not isinstance(backend, LocalModel):
        raise TunewiseError(
            f"candidate '{name}': {spec.strategy} needs a local transformers model to train; "
            f"'{backend.spec}' is not one"
        )
    if spec.strategy == "qlora" and (reason := qlora_unavailable()):
        raise CandidateSkipped(reason)
    stratify = stratify_by_label(task.contract.output_format)
    examples = list(train)
    if spec.max_train_examples:
        examples = sample_examples(examples, spec.max_train_examples, task.seed, stratify)
    fit, validation = split_examples(examples, spec.validation_fraction, task.seed, stratify)
    config = TrainingConfig.from_candidate(spec, task.seed)
    key = adapter_key(task, backend, fit, validation, config, spec.max_length)
    folder = backend.home / "adapters" / key
    cached = (folder / "training.json").exists()
    if cached:
        record = json.loads((folder / "training.json").read_text())
    else:
        record = _train(task, spec, backend, fit, validation, config, folder, name, progress)
    adapted = LocalModel(
        f"{backend.spec}+{spec.strategy}:{key[:12]}", backend.folder, backend.home, adapter=folder
    )
    params = {
        "base_model": backend.spec,
        "adapter": key,
        "train_examples": len(fit),
        **config_summary(config),
    }
    price = task.prices.compute_usd_per_hour
    cost = None if price is None else round(record["seconds"] / 3600 * price, 6)
    details = {
        "training": {**record, "cached": cached, "cost_usd": cost},
        "adapter_path": str(folder),
    }
    return PromptPredictor(
        name,
        spec.strategy,
        adapted,
        task.contract,
        lambda _: (),
        record["seconds"],
        params,
        details,
    )


def config_summary(config: TrainingConfig) -> dict[str, Any]:
    return {
        "r": config.r,
        "alpha": config.alpha,
        "learning_rate": config.learning_rate,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
    }


def adapter_key(
    task: Task,
    backend: LocalModel,
    fit: Sequence[Example],
    validation: Sequence[Example],
    config: TrainingConfig,
    max_length: int,
) -> str:
    """sha256 of everything that decides the adapter's weights."""
    return cache_key(
        base=backend.fingerprint(),
        data=examples_hash(fit, validation),
        prompt=system_prompt(task.contract),
        config=config.__dict__,
        max_length=max_length,
        code=__version__,
    )


def _train(
    task: Task,
    spec: LoraCandidate,
    backend: LocalModel,
    fit: Sequence[Example],
    validation: Sequence[Example],
    config: TrainingConfig,
    folder: Path,
    name: str,
    progress: Progress | None,
) -> dict[str, Any]:
    lint_template(backend, task.contract, fit[0])
    encoded = [encode_example(backend, task.contract, e) for e in fit]
    kept = [s for s in encoded if len(s.input_ids) <= spec.max_length]
    held = [encode_example(backend, task.contract, e) for e in validation]
    held = [s for s in held if len(s.input_ids) <= spec.max_length]
    lint_sequences(kept + held, backend.tokenizer.eos_token_id)
    steps = math.ceil(math.ceil(len(kept) / config.batch_size) / config.gradient_accumulation)
    advance = progress.stage(f"{name} train", steps * config.epochs) if progress else None
    # The exact conversations trained on, for `tunewise export --format openai-jsonl`.
    conversations = {
        f"{split}.messages.jsonl": "".join(
            json.dumps({"messages": training_messages(task.contract, e)}, ensure_ascii=False) + "\n"
            for e in examples
        )
        for split, examples in (("train", fit), ("validation", validation))
    }
    return train_adapter(
        backend.folder,
        kept,
        held,
        config,
        folder,
        folder.with_name(folder.name + ".work"),
        backend.tokenizer.pad_token_id,
        advance=advance or (lambda n: None),
        notes={"left_out_too_long": len(encoded) - len(kept)},
        extra_files=conversations,
    )
