"""The examples a fine-tuning method trains and validates on."""

from __future__ import annotations

from collections.abc import Sequence

from tunewise.task.config import OutputFormat
from tunewise.task.data import Example, sample_examples, split_examples, stratify_by_label


def training_split(
    train: Sequence[Example],
    output_format: OutputFormat,
    *,
    max_examples: int | None,
    validation_fraction: float,
    seed: int,
) -> tuple[list[Example], list[Example]]:
    """What a fine-tuning method trains and validates on: a seeded subsample of train (when
    `max_examples` caps it), split seeded; both stratified for label tasks. Every training
    method uses it, so the same settings train on the same examples wherever they train."""
    stratify = stratify_by_label(output_format)
    examples = list(train)
    if max_examples:
        examples = sample_examples(examples, max_examples, seed, stratify)
    return split_examples(examples, validation_fraction, seed, stratify)
