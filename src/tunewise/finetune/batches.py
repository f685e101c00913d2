"""Batches for fine-tuning: length-grouped, left-padded, and a loss over answer tokens only."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from tunewise.finetune.examples import IGNORE, TrainingSequence


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int
) -> list[list[int]]:
    """Seeded batches of similar lengths (little padding), in a shuffled order."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 16
    batches = []
    for start in range(0, len(order), window):
        group = sorted(order[start : start + window], key=lambda i: -lengths[i])
        batches.extend(group[i : i + batch_size] for i in range(0, len(group), batch_size))
    rng.shuffle(batches)
    return batches


def collate(sequences: Sequence[TrainingSequence], pad_id: int) -> dict[str, Any]:
    """Left-pad to the longest sequence of the batch (dynamic padding). Every answer then ends
    at the right edge, so the loss needs logits for the last few positions only."""
    import torch

    width = max(len(s.input_ids) for s in sequences)
    pads = [width - len(s.input_ids) for s in sequences]
    return {
        "input_ids": torch.tensor(
            [[pad_id] * p + list(s.input_ids) for p, s in zip(pads, sequences, strict=True)]
        ),
        "attention_mask": torch.tensor(
            [[0] * p + [1] * len(s.input_ids) for p, s in zip(pads, sequences, strict=True)]
        ),
        "position_ids": torch.tensor(
            [[0] * p + list(range(len(s.input_ids))) for p, s in zip(pads, sequences, strict=True)]
        ),
        "labels": torch.tensor(
            [[IGNORE] * p + list(s.labels) for p, s in zip(pads, sequences, strict=True)]
        ),
    }


def completion_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Mean cross-entropy over answer tokens. Only the positions that predict an answer token get
    logits: projecting prompt positions onto the 49,152-token vocabulary costs about 30% of a step
    on the embedded model and carries no loss."""
    import torch.nn.functional as F

    labels = batch["labels"]
    keep = int((labels != IGNORE).sum(dim=1).max()) + 1
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        logits_to_keep=keep,
    ).logits
    predicted = logits[:, :-1].float()
    targets = labels[:, -(keep - 1) :]
    return F.cross_entropy(
        predicted.reshape(-1, predicted.shape[-1]), targets.reshape(-1), ignore_index=IGNORE
    )
