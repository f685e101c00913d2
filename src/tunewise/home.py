"""Where tunewise keeps what outlives a run: converted models, adapters, indexes and the response
cache ($TUNEWISE_HOME, else ~/.cache/tunewise)."""

from __future__ import annotations

import os
from pathlib import Path


def tunewise_home() -> Path:
    """Where converted models, fingerprints and the response cache live ($TUNEWISE_HOME)."""
    return Path(os.environ.get("TUNEWISE_HOME") or Path.home() / ".cache" / "tunewise")
