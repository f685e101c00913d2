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


def process_parts(
    batches: Sequence[Sequence[int]], targets: Sequence[int], rank: int, processes: int
) -> list[tuple[list[int], float]]:
    """Process `rank`'s part of each global batch (contiguous, near-equal; a batch smaller than
    `processes` lends its examples again so no process idles), with the weight that makes DDP's
    mean of the processes' losses the global batch's mean loss per answer token: `processes`
    times the part's share of the batch's answer tokens (`targets`: each example's). One
    process: each batch whole, weight 1."""
    parts = []
    for batch in batches:
        rows = spread(batch, processes)
        size, extra = divmod(len(rows), processes)
        start = rank * size + min(rank, extra)
        part = rows[start : start + size + (rank < extra)]
        total = sum(targets[i] for i in rows)
        parts.append((part, processes * sum(targets[i] for i in part) / max(total, 1)))
    return parts


def spread(batch: Sequence[int], processes: int) -> list[int]:
    """The rows a global batch is dealt out as: itself, or repeated up to one row a process."""
    return [batch[i % len(batch)] for i in range(max(len(batch), processes))]


def shared_prefix(sequences: Sequence[TrainingSequence]) -> int:
    """How many leading tokens all sequences share, short of each one's last prompt token (the
    position that predicts the first answer token stays in every row). Training sequences open
    with the same system prompt: 70-85% of their tokens on the shipped examples."""
    if not sequences:
        return 0
    first = sequences[0].input_ids
    shared = min(_answer_start(s) for s in sequences) - 1
    for sequence in sequences[1:]:
        ids = sequence.input_ids
        n = 0
        while n < shared and ids[n] == first[n]:
            n += 1
        shared = n
    return max(shared, 0)


def _answer_start(sequence: TrainingSequence) -> int:
    return next(
        (i for i, label in enumerate(sequence.labels) if label != IGNORE), len(sequence.labels)
    )


def collate(sequences: Sequence[TrainingSequence], pad_id: int, prefix: int = 0) -> dict[str, Any]:
    """Left-pad to the longest sequence of the batch (dynamic padding). Every answer then ends
    at the right edge, so the loss needs logits for the last few positions only.

    With `prefix` (the length of a token prefix all sequences share, see shared_prefix), the
    batch carries that prefix once as `prefix_ids` and each row holds only the rest: the prefix
    is computed once per batch instead of once per row. The attention mask then covers prefix,
    padding and row, and positions continue from the prefix."""
    import torch

    rows = [s.input_ids[prefix:] for s in sequences]
    width = max(len(row) for row in rows)
    pads = [width - len(row) for row in rows]
    batch = {
        "input_ids": torch.tensor(
            [[pad_id] * p + list(r) for p, r in zip(pads, rows, strict=True)]
        ),
        "attention_mask": torch.tensor(
            [[1] * prefix + [0] * p + [1] * len(r) for p, r in zip(pads, rows, strict=True)]
        ),
        "position_ids": torch.tensor(
            [
                [0] * p + list(range(prefix, prefix + len(r)))
                for p, r in zip(pads, rows, strict=True)
            ]
        ),
        "labels": torch.tensor(
            [[IGNORE] * p + list(s.labels[prefix:]) for p, s in zip(pads, sequences, strict=True)]
        ),
    }
    if prefix:
        batch["prefix_ids"] = torch.tensor([sequences[0].input_ids[:prefix]])
    return batch


def computed_tokens(batch: dict[str, Any]) -> int:
    """Tokens a forward pass over the batch computes: a shared prefix counts once."""
    prefix = batch["prefix_ids"].shape[1] if "prefix_ids" in batch else 0
    return int(batch["attention_mask"][:, prefix:].sum()) + prefix


def completion_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Mean cross-entropy over answer tokens. Only the positions that predict an answer token get
    logits: projecting prompt positions onto the 49,152-token vocabulary costs about 30% of a step
    on the embedded model and carries no loss. A shared prefix (`prefix_ids`) runs once, and its
    KV cache, repeated for every row, keeps its graph: gradients reach the LoRA weights through
    it as they would through each row's own copy."""
    import torch.nn.functional as F

    labels = batch["labels"]
    keep = int((labels != IGNORE).sum(dim=1).max()) + 1
    cache = None
    if "prefix_ids" in batch:
        cache = model(input_ids=batch["prefix_ids"], use_cache=True, logits_to_keep=1).cache
        cache.batch_repeat_interleave(labels.shape[0])
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        cache=cache,
        use_cache=cache is not None,
        logits_to_keep=keep,
    ).logits
    predicted = logits[:, :-1].float()
    targets = labels[:, -(keep - 1) :]
    return F.cross_entropy(
        predicted.reshape(-1, predicted.shape[-1]), targets.reshape(-1), ignore_index=IGNORE
    )
