"""A fine-tuning method as the training loop needs it: which PEFT config its settings make, and
what the loop and the serving model may assume of the weights it trains.

Built-in LoRA and QLoRA and a plugin's method (IA3, prompt tuning, ...) are records of this one
shape, named by their strategy's record; the loop never asks for a method by name.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainingMethod:
    """How a training strategy turns its settings into trainable weights."""

    peft_type: str  # peft's PeftType name: "LORA", "IA3", "PROMPT_TUNING", ...
    settings: Callable[[Any], Mapping[str, Any]]
    """spec -> the PEFT config's arguments (JSON values: they are part of the adapter's key)."""
    mergeable: bool = True  # merged into the base weights for answering (no per-token overhead)
    shared_prefix_safe: bool = True  # the loop may compute a batch's shared prompt prefix once
    quantize_4bit: bool = False  # the base model is loaded in 4 bits (QLoRA: CUDA, bitsandbytes)

    def peft_arguments(self, spec: Any) -> dict[str, Any]:
        return {"peft_type": self.peft_type, "task_type": "CAUSAL_LM", **self.settings(spec)}

    def unavailable(self) -> str | None:
        """Why this method cannot train on this machine, or None when it can."""
        if not self.quantize_4bit:
            return None
        import torch

        if not torch.cuda.is_available():
            return "QLoRA loads the base model in 4 bits with bitsandbytes, which needs a CUDA GPU"
        if importlib.util.find_spec("bitsandbytes") is None:
            return "QLoRA needs bitsandbytes: pip install bitsandbytes"
        return None


def peft_config(arguments: Mapping[str, Any]) -> Any:
    """peft's config object from TrainingMethod.peft_arguments (also across processes)."""
    from peft import get_peft_config

    return get_peft_config(dict(arguments))


def lora_settings(spec: Any) -> dict[str, Any]:
    """LoRA's arguments from a candidate's r, alpha, dropout and target_modules."""
    return {
        "r": spec.r,
        "lora_alpha": spec.alpha,
        "lora_dropout": spec.dropout,
        "target_modules": spec.target_modules,
    }
