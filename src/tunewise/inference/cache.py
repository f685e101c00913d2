"""A sqlite cache of model answers, keyed by sha256 of everything that decides the answer
(core/keys.py).

Each answer is committed as soon as it exists, so a run killed at any point resumes without
recomputing finished work. API keys are never part of a key or a value.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any


class ResponseCache:
    """Answers by key; safe against kill -9 (WAL, one transaction per answer)."""

    def __init__(self, path: Path, *, any_thread: bool = False) -> None:
        """`any_thread`: the caller serializes access itself (a server's worker threads)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=not any_thread)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        self._db.commit()

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)",
                (key, json.dumps(value, ensure_ascii=False)),
            )

    def close(self) -> None:
        self._db.close()
