"""lora and qlora: an adapter trained on the train split, answering with the short prompt
(step 3). qlora is the same with the base model loaded in 4 bits (CUDA and bitsandbytes)."""

from __future__ import annotations

from typing import Literal

from tunewise.core.catalog import Strategy
from tunewise.core.specs import FineTuningOptions
from tunewise.core.training_method import TrainingMethod, lora_settings

LORA = TrainingMethod("LORA", lora_settings)
QLORA = TrainingMethod("LORA", lora_settings, quantize_4bit=True)


class LoraCandidate(FineTuningOptions):
    """A LoRA adapter trained on the train split; answers with the short zero-shot prompt.

    `qlora` is the same with the base model loaded in 4 bits (needs CUDA and bitsandbytes)."""

    strategy: Literal["lora", "qlora"]


STRATEGIES = [
    Strategy(
        "lora",
        "fine-tuning",
        LoraCandidate,
        "tunewise.strategies.lora.adapter:prepare",
        "a LoRA adapter trained on train",
        "High",
        trains=True,
        ladder="measured",
        rank=0,
        trainer=LORA,
    ),
    Strategy(
        "qlora",
        "fine-tuning",
        LoraCandidate,
        "tunewise.strategies.lora.adapter:prepare",
        "LoRA on the base model loaded in 4 bits (CUDA and bitsandbytes)",
        "High",
        trains=True,
        requires=frozenset({"cuda"}),
        rank=1,
        trainer=QLORA,
    ),
]
