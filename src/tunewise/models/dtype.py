"""Which dtype a local model runs in, and where bfloat16 defers to float32.

A bfloat16 label choice that is a near tie is settled in float32 (see NEAR_TIE_NATS), so a bf16
run gives float32's labels; the time it saves depends on how many choices are near ties. On the
embedded model 58% of review-sentiment's choices are, and a bf16 pass with its ties settled took
longer than float32 on both CPUs measured (bench/bf16_agreement.py: 1.15x on AVX2, 1.48x on
AVX-512 BF16, whose bf16 forward pass is only 1.8x float32's). Training under bf16 autocast
there was 1.09x faster at a 2.0% higher validation loss (bench/train_vs_trl.py --bf16). So
`--dtype auto` picks bfloat16 only where bf16 is several times faster: a bf16-capable GPU or a
CPU with AMX. Fine-tuning follows the dtype (bf16 autocast, float32 master weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tunewise.errors import ModelError

DTYPES = ("auto", "float32", "bfloat16")
# A bfloat16 label choice whose two best labels lie closer than this (in summed log-prob) is
# settled by the same model in float32. On the embedded model, bf16 rounding moved the gap
# between float32's two best labels by at most 0.30 nats over 300 review sentences
# (bench/bf16_agreement.py); wider gaps keep their order, so only near ties pay for float32.
NEAR_TIE_NATS = 0.5
# The referee is a second, float32 copy of the model; above this size it would crowd out the
# model it checks, and bfloat16 runs without it.
REFEREE_MAX_BYTES = 4 * 2**30
_AMX = "amx_bf16"


def dtype_for(requested: str, *, cuda: bool, cuda_bf16: bool, cpu_flags: frozenset[str]) -> str:
    """The dtype: as requested; for "auto", bfloat16 on a bf16-capable GPU or a CPU with AMX,
    else float32 (see the module's note for why not on AVX-512 BF16)."""
    if requested not in DTYPES:
        raise ModelError(f"unknown dtype '{requested}'; use one of: {', '.join(DTYPES)}")
    if requested != "auto":
        return requested
    if cuda:
        return "bfloat16" if cuda_bf16 else "float32"
    return "bfloat16" if _AMX in cpu_flags else "float32"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo is not available."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def resolve_dtype(requested: str = "auto") -> str:
    """dtype_for on this machine (torch is imported only to resolve "auto")."""
    if requested != "auto":
        return dtype_for(requested, cuda=False, cuda_bf16=False, cpu_flags=frozenset())
    import torch

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    return dtype_for(requested, cuda=cuda, cuda_bf16=bf16, cpu_flags=cpu_flags())


def near_tie(logprobs: Sequence[float], nats: float) -> bool:
    """The two most likely labels are less than `nats` apart."""
    if len(logprobs) < 2:
        return False
    best, second = sorted(logprobs, reverse=True)[:2]
    return best - second < nats


def referee_fits(folder: Path) -> bool:
    """Whether a float32 copy of the weights in `folder` stays under REFEREE_MAX_BYTES, judged
    from the safetensors files without loading them (counted as if stored in 16 bits, so a
    float32 copy is twice their size at most)."""
    stored = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    return 0 < 2 * stored <= REFEREE_MAX_BYTES
