"""Content keys: what decides a cached answer, adapter or index, hashed (no API key is ever a
part)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def cache_key(**parts: Any) -> str:
    """sha256 of the canonical JSON of the parts (model, weights hash, prompt, parameters)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()
