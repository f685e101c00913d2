"""LoRA dropout that samples where it drops instead of a coin for every element.

peft puts an `nn.Dropout` in front of every adapted layer: 210 of them on the embedded model,
each drawing one Bernoulli per input element per step. On CPU that draw cost 15% of a training
step. With the small rates LoRA uses (0.05 by default), the dropped positions can be drawn
directly as geometric gaps between drops: about n·p draws instead of n, the same distribution
(every element dropped independently with probability p, survivors scaled by 1/(1-p)).
"""

from __future__ import annotations

import math
from typing import Any

import torch

# Above this rate the gaps are short and a coin per element is as cheap.
SPARSE_UP_TO = 0.25


def drop_positions(n: int, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flat indices in [0, n), each present independently with probability p."""
    if n == 0 or p <= 0:
        return torch.empty(0, dtype=torch.long)
    chunk = _gaps_per_draw(n, p)
    ends: list[torch.Tensor] = []
    reached = 0.0
    while reached <= n:
        gaps = torch.empty(chunk, dtype=torch.float64).geometric_(p, generator=generator)
        positions = gaps.cumsum_(0).add_(reached)  # float64 counts exactly up to 2**53
        ends.append(positions)
        reached = float(positions[-1])
    everything = torch.cat(ends) if len(ends) > 1 else ends[0]
    return everything[everything <= n].sub_(1).long()


def _gaps_per_draw(n: int, p: float) -> int:
    """The gap from one drop to the next is geometric(p). Enough gaps to pass n nearly always
    (their mean count plus six standard deviations); drop_positions draws more if not."""
    return int(n * p + 6 * math.sqrt(n * p) + 16)


class _SparseDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: float) -> torch.Tensor:
        out = x.mul(1 / (1 - p)).contiguous()
        dropped = drop_positions(out.numel(), p).to(out.device)
        out.view(-1)[dropped] = 0
        ctx.save_for_backward(dropped)
        ctx.p = p
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (dropped,) = ctx.saved_tensors
        grad = grad.mul(1 / (1 - ctx.p)).contiguous()
        grad.view(-1)[dropped] = 0
        return grad, None


class SparseDropout(torch.nn.Module):
    """`nn.Dropout(p)` with the dropped positions drawn as geometric gaps (see the module)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return _SparseDropout.apply(x, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_sparse_dropout(model: Any) -> int:
    """Swap peft's LoRA `nn.Dropout`s on CPU for SparseDropout; returns how many were swapped.
    On GPU a coin per element is cheap and the stock module stays."""
    swapped = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        weight = next(module.parameters(), None)
        if weight is None or weight.device.type != "cpu":
            continue
        for name, dropout in list(dropouts.items()):
            if isinstance(dropout, torch.nn.Dropout) and 0 < dropout.p <= SPARSE_UP_TO:
                dropouts[name] = SparseDropout(dropout.p)
                swapped += 1
    return swapped
