"""The training speed-ups that must not change what is computed: LoRA dropout drawn as geometric
gaps (the same distribution as a coin per element) and the contiguous input of the output
projection (the same logits)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_llama
from peft import LoraConfig, get_peft_model

from tunewise.finetune import dropout
from tunewise.finetune.dropout import SparseDropout, drop_positions, use_sparse_dropout
from tunewise.models.local import contiguous_head_input


def within_sigmas(count: int, n: int, p: float, sigmas: float = 5) -> bool:
    """A binomial(n, p) count lies this close to its mean except with negligible probability."""
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("p", [0.01, 0.05, 0.2])
def test_drop_positions_drop_each_element_with_probability_p(p: float) -> None:
    n, rounds = 50_000, 20
    generator = torch.Generator().manual_seed(1)
    hits = torch.zeros(n)
    pairs = 0  # neighbours dropped together: p**2 of the time if the drops are independent
    for _ in range(rounds):
        dropped = drop_positions(n, p, generator)
        assert dropped.dtype == torch.long
        assert bool((dropped >= 0).all()) and bool((dropped < n).all())
        assert len(torch.unique(dropped)) == len(dropped)
        mask = torch.zeros(n, dtype=torch.bool)
        mask[dropped] = True
        hits += mask
        pairs += int((mask[1:] & mask[:-1]).sum())
    assert within_sigmas(int(hits.sum()), n * rounds, p)
    # No region is favoured: each tenth of the tensor gets its share.
    for tenth in hits.view(10, -1).sum(dim=1):
        assert within_sigmas(int(tenth), n * rounds // 10, p)
    assert within_sigmas(pairs, (n - 1) * rounds, p * p)


def test_drop_positions_draws_more_gaps_when_the_first_run_falls_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With one gap per draw, the loop must keep drawing until it passes the end."""
    monkeypatch.setattr(dropout, "_gaps_per_draw", lambda n, p: 1)
    n, p = 20_000, 0.05
    counts = [len(drop_positions(n, p, torch.Generator().manual_seed(s))) for s in range(5)]
    assert all(within_sigmas(c, n, p) for c in counts)


def test_drop_positions_of_nothing() -> None:
    assert drop_positions(0, 0.1).numel() == 0
    assert drop_positions(100, 0.0).numel() == 0


def test_drop_positions_are_seeded_by_the_generator() -> None:
    first = drop_positions(10_000, 0.05, torch.Generator().manual_seed(7))
    again = drop_positions(10_000, 0.05, torch.Generator().manual_seed(7))
    other = drop_positions(10_000, 0.05, torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_sparse_dropout_scales_survivors_and_passes_gradients_through_them_only() -> None:
    layer = SparseDropout(0.2).train()
    x = (torch.rand(8, 30, 16) + 0.5).requires_grad_()
    out = layer(x)
    kept = out != 0
    assert 0 < int((~kept).sum()) < x.numel()
    assert torch.allclose(out[kept], x[kept] / 0.8)
    out.sum().backward()
    assert x.grad is not None
    assert torch.allclose(x.grad, kept.float() / 0.8)


def test_sparse_dropout_handles_a_strided_input() -> None:
    x = torch.rand(16, 12).t().requires_grad_()  # not contiguous
    out = SparseDropout(0.1).train()(x)
    (out * torch.arange(x.numel()).view(x.shape)).sum().backward()
    kept = out != 0
    assert x.grad is not None
    assert torch.allclose(x.grad, kept * torch.arange(x.numel()).view(x.shape) / 0.9)


def test_sparse_dropout_is_the_identity_in_eval_mode_and_at_zero() -> None:
    x = torch.rand(4, 5)
    assert SparseDropout(0.3).eval()(x) is x
    assert SparseDropout(0.0).train()(x) is x


def test_use_sparse_dropout_swaps_every_lora_dropout_and_training_still_learns() -> None:
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05, target_modules="all-linear")
    model = get_peft_model(tiny_llama(), config)
    assert use_sparse_dropout(model) == 2 * 7  # two layers, seven linear projections each
    assert not any(
        isinstance(d, torch.nn.Dropout)
        for m in model.modules()
        if isinstance(getattr(m, "lora_dropout", None), torch.nn.ModuleDict)
        for d in m.lora_dropout.values()
    )
    ids = torch.randint(0, 64, (2, 12))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    losses = []
    for _ in range(15):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def test_use_sparse_dropout_leaves_rates_above_the_sparse_range_alone() -> None:
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.5, target_modules="all-linear")
    assert use_sparse_dropout(get_peft_model(tiny_llama(), config)) == 0


def test_contiguous_head_input_gives_the_same_logits() -> None:
    model = tiny_llama()
    ids = torch.randint(0, 64, (6, 20))
    with torch.no_grad():
        before = model(input_ids=ids, logits_to_keep=3).logits
        contiguous_head_input(model)
        after = model(input_ids=ids, logits_to_keep=3).logits
    assert after.shape == (6, 3, 64)
    assert torch.allclose(before, after, atol=1e-6)
