"""How the cost model writes amounts: significant figures in plain notation, dollars with
cents, seconds, and JSON numbers (None for unpriced or never)."""

from __future__ import annotations

import math


def _sig(x: float, digits: int = 3) -> str:
    """`digits` significant figures in plain notation (no exponent), whole numbers kept whole:
    0.41234 -> '0.412', 8.0 -> '8', 767.4 -> '767', 4512.3 -> '4,512'."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    text = f"{x:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _seconds(x: float) -> str:
    return f"{_sig(x)} s"


def _money(x: float) -> str:
    """Cents for amounts from $1, three significant figures below: '$1.20', '$0.60', '$0.000065'."""
    if abs(x) >= 1 or x == 0:
        return f"${x:,.2f}"
    text = _sig(x)
    whole, _, decimals = text.partition(".")
    return f"${whole}.{decimals.ljust(2, '0')}"


def _json_number(x: float | None) -> float | None:
    """Six significant figures for JSON; None for unpriced or never (inf)."""
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.6g}")
