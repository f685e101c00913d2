"""The default ladder's compute budget, as `--budget` writes it."""

from __future__ import annotations

import re

from tunewise.errors import TunewiseError

DEFAULT_BUDGET = "7m"
"""Fits `make demo` (the review-sentiment ladder through LoRA) within 12 minutes on 2 CPU cores,
installation included. The budget counts the compute the ladder's measurements record; model
loads and checks come on top (about a minute here)."""
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def parse_budget(text: str) -> float | None:
    """'15m', '90s', '1h', '1h30m' -> seconds; 'none' -> None (no budget)."""
    value = text.strip().lower()
    if value in {"none", "off", "unlimited"}:
        return None
    parts = _DURATION.fullmatch(value)
    if not value or parts is None or not any(parts.groups()):
        raise TunewiseError(
            f"--budget takes a duration like 15m, 90s or 1h30m, or none; got {text}"
        )
    hours, minutes, seconds = (float(g) if g else 0.0 for g in parts.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise TunewiseError(f"--budget must be positive; got {text}")
    return total
