"""The fine-tuning server's records in sqlite: uploaded files, jobs, their events and
checkpoints. One connection shared by the request threads and the worker, behind a lock; WAL
journal, so a killed server leaves every committed row in place. The schema grows by ordered,
named migrations, each applied once and remembered in `migrations`."""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

FINISHED = ("succeeded", "failed", "cancelled")


def new_id(prefix: str) -> str:
    """An unguessable id: the prefix and 24 random hex characters."""
    return f"{prefix}-{secrets.token_hex(12)}"


def event_id() -> str:
    """An event's id, in the order events happen (a client may sort events by it)."""
    return f"ftevent-{time.time_ns():016x}{secrets.token_hex(4)}"


def now() -> int:
    return int(time.time())


def _create_tables(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE files (
            id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, filename TEXT NOT NULL,
            purpose TEXT NOT NULL, bytes INTEGER NOT NULL, examples INTEGER NOT NULL)"""
    )
    db.execute(
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, model TEXT NOT NULL,
            training_file TEXT NOT NULL, validation_file TEXT, hyperparameters TEXT NOT NULL,
            seed INTEGER NOT NULL, suffix TEXT, status TEXT NOT NULL, fine_tuned_model TEXT,
            finished_at INTEGER, trained_tokens INTEGER, error TEXT, result_files TEXT NOT NULL,
            metadata TEXT)"""
    )
    db.execute(
        """CREATE TABLE events (
            id TEXT PRIMARY KEY, job_id TEXT NOT NULL REFERENCES jobs(id), created_at INTEGER,
            level TEXT NOT NULL, message TEXT NOT NULL, type TEXT NOT NULL, data TEXT)"""
    )
    db.execute(
        """CREATE TABLE checkpoints (
            id TEXT PRIMARY KEY, job_id TEXT NOT NULL REFERENCES jobs(id), created_at INTEGER,
            step INTEGER NOT NULL, metrics TEXT NOT NULL, model TEXT NOT NULL UNIQUE,
            folder TEXT NOT NULL)"""
    )


MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    ("create_tables", _create_tables),
]


@dataclass(frozen=True)
class Job:
    """One fine-tuning job as stored; `api()` is its OpenAI `fine_tuning.job` object."""

    id: str
    created_at: int
    model: str
    training_file: str
    validation_file: str | None
    hyperparameters: dict[str, Any]
    seed: int
    suffix: str | None
    status: str
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    trained_tokens: int | None = None
    error: dict[str, Any] | None = None
    result_files: list[str] = field(default_factory=list)
    metadata: dict[str, str] | None = None

    def api(self) -> dict[str, Any]:
        shown = {k: v for k, v in self.hyperparameters.items() if not k.startswith("_")}
        return {
            "id": self.id,
            "object": "fine_tuning.job",
            "created_at": self.created_at,
            "model": self.model,
            "training_file": self.training_file,
            "validation_file": self.validation_file,
            "hyperparameters": shown,
            "method": {"type": "supervised", "supervised": {"hyperparameters": shown}},
            "seed": self.seed,
            "status": self.status,
            "fine_tuned_model": self.fine_tuned_model,
            "finished_at": self.finished_at,
            "trained_tokens": self.trained_tokens,
            "error": self.error,
            "result_files": self.result_files,
            "organization_id": "tunewise",
            "estimated_finish": None,
            "integrations": [],
            "metadata": self.metadata,
            "user_provided_suffix": self.suffix,
        }


_JSON_COLUMNS = {"hyperparameters", "error", "result_files", "metadata"}


class Store:
    """The sqlite file under the server's data folder."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.lock = threading.RLock()
        self._migrate()

    def _migrate(self) -> None:
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY)")
            done = {row[0] for row in db.execute("SELECT name FROM migrations")}
            for name, migrate in MIGRATIONS:
                if name not in done:
                    migrate(db)
                    db.execute("INSERT INTO migrations VALUES (?)", (name,))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self.lock:
            return list(self.db.execute(sql, args))

    def close(self) -> None:
        with self.lock:
            self.db.close()

    # ---- files ------------------------------------------------------------------------------

    def add_file(self, record: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)",
                tuple(record[k] for k in ("id", "created_at", "filename", "purpose", "bytes",
                                          "examples")),
            )  # fmt: skip

    def file(self, file_id: str) -> dict[str, Any] | None:
        found = self.rows("SELECT * FROM files WHERE id = ?", file_id)
        return dict(found[0]) if found else None

    def files(self, purpose: str | None = None) -> list[dict[str, Any]]:
        """Newest first."""
        if purpose is None:
            return [dict(r) for r in self.rows("SELECT * FROM files ORDER BY rowid DESC")]
        rows = self.rows("SELECT * FROM files WHERE purpose = ? ORDER BY rowid DESC", purpose)
        return [dict(r) for r in rows]

    def drop_file(self, file_id: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM files WHERE id = ?", (file_id,)).rowcount == 1

    # ---- jobs -------------------------------------------------------------------------------

    def add_job(self, job: Job) -> None:
        values = {f.name: getattr(job, f.name) for f in fields(job)}
        encoded = {k: json.dumps(v) if k in _JSON_COLUMNS else v for k, v in values.items()}
        names = ", ".join(encoded)
        marks = ", ".join("?" for _ in encoded)
        with self.transaction() as db:
            db.execute(f"INSERT INTO jobs ({names}) VALUES ({marks})", tuple(encoded.values()))

    def job(self, job_id: str) -> Job | None:
        found = self.rows("SELECT * FROM jobs WHERE id = ?", job_id)
        return _job(found[0]) if found else None

    def jobs(self, statuses: Sequence[str] | None = None, oldest_first: bool = False) -> list[Job]:
        where = ""
        if statuses:
            where = f"WHERE status IN ({', '.join('?' for _ in statuses)})"
        order = "ASC" if oldest_first else "DESC"
        rows = self.rows(f"SELECT * FROM jobs {where} ORDER BY rowid {order}", *(statuses or ()))
        return [_job(row) for row in rows]

    def update_job(self, job_id: str, only_if: Sequence[str] = (), **changes: Any) -> bool:
        """Change a job's columns; with `only_if`, only while its status is one of them (so a
        cancelled job is never marked succeeded). Whether it changed."""
        encoded = {k: json.dumps(v) if k in _JSON_COLUMNS else v for k, v in changes.items()}
        sets = ", ".join(f"{name} = ?" for name in encoded)
        sql, args = f"UPDATE jobs SET {sets} WHERE id = ?", [*encoded.values(), job_id]
        if only_if:
            sql += f" AND status IN ({', '.join('?' for _ in only_if)})"
            args += list(only_if)
        with self.transaction() as db:
            return db.execute(sql, args).rowcount == 1

    def status(self, job_id: str) -> str | None:
        found = self.rows("SELECT status FROM jobs WHERE id = ?", job_id)
        return str(found[0][0]) if found else None

    # ---- events and checkpoints ----------------------------------------------------------------

    def add_event(
        self,
        job_id: str,
        message: str,
        *,
        level: str = "info",
        kind: str = "message",
        data: dict[str, Any] | None = None,
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event_id(), job_id, now(), level, message, kind, json.dumps(data)),
            )

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """Newest first, as OpenAI lists them."""
        rows = self.rows("SELECT * FROM events WHERE job_id = ? ORDER BY rowid DESC", job_id)
        return [
            {
                "id": row["id"],
                "object": "fine_tuning.job.event",
                "created_at": row["created_at"],
                "level": row["level"],
                "message": row["message"],
                "type": row["type"],
                "data": json.loads(row["data"]),
            }
            for row in rows
        ]

    def add_checkpoint(self, job_id: str, step: int, metrics: dict[str, Any], model: str,
                       folder: str) -> None:  # fmt: skip
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
                (new_id("ftckpt"), job_id, now(), step, json.dumps(metrics), model, folder),
            )

    def drop_checkpoint(self, checkpoint_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM checkpoints WHERE id = ?", (checkpoint_id,))

    def checkpoints(self, job_id: str) -> list[sqlite3.Row]:
        """Newest first."""
        return self.rows("SELECT * FROM checkpoints WHERE job_id = ? ORDER BY step DESC", job_id)

    def checkpoint_named(self, model: str) -> sqlite3.Row | None:
        found = self.rows("SELECT * FROM checkpoints WHERE model = ?", model)
        return found[0] if found else None


def checkpoint_object(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "fine_tuning.job.checkpoint",
        "created_at": row["created_at"],
        "fine_tuned_model_checkpoint": row["model"],
        "fine_tuning_job_id": row["job_id"],
        "step_number": row["step"],
        "metrics": json.loads(row["metrics"]),
    }


def _job(row: sqlite3.Row) -> Job:
    values = {k: json.loads(row[k]) if k in _JSON_COLUMNS else row[k] for k in row.keys()}  # noqa: SIM118
    return Job(**values)


def page(items: Sequence[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """OpenAI's cursor page: the `limit` items after the one whose id is `after`."""
    start = 0
    if after is not None:
        ids = [item["id"] for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    chosen = list(items[start : start + limit])
    return {
        "object": "list",
        "data": chosen,
        "has_more": start + limit < len(items),
        "first_id": chosen[0]["id"] if chosen else None,
        "last_id": chosen[-1]["id"] if chosen else None,
    }
