"""The run ledger: a sqlite history of every recorded run, so regressions can be tracked after
each model, prompt or data change.

WAL journal and one transaction per recorded run: a run is in the ledger whole or not at all,
even if the process is killed mid-write, and several processes can record at once. The schema
grows by ordered, named migrations, each applied once and remembered in `migrations`.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tunewise.errors import TunewiseError
from tunewise.home import tunewise_home
from tunewise.records.compare import prompt_hash, read_run
from tunewise.schemas.run_candidate import CandidateRecord
from tunewise.schemas.run_file import read_candidate


def ledger_path() -> Path:
    """$TUNEWISE_LEDGER, else ledger.sqlite in $TUNEWISE_HOME."""
    override = os.environ.get("TUNEWISE_LEDGER")
    return Path(override) if override else tunewise_home() / "ledger.sqlite"


def _create_runs(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY, folder TEXT NOT NULL, created_at TEXT, recorded_at TEXT,
            task_name TEXT, task_hash TEXT, data_hash TEXT, code_version TEXT, seed INTEGER)"""
    )
    db.execute(
        """CREATE TABLE candidates (
            run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, name TEXT NOT NULL,
            strategy TEXT, model TEXT, weights_hash TEXT, prompt_hash TEXT, adapter_hash TEXT,
            status TEXT, metrics TEXT, PRIMARY KEY (run_id, name))"""
    )
    db.execute(
        """CREATE TABLE outcomes (
            run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
            candidate TEXT NOT NULL, example_id TEXT NOT NULL, scores TEXT, output TEXT,
            PRIMARY KEY (run_id, candidate, example_id))"""
    )
    db.execute("CREATE INDEX runs_by_task ON runs(task_name, created_at)")


def _add_approvals(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE approvals (
            run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
            task_name TEXT NOT NULL, approved_at TEXT NOT NULL)"""
    )


MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    ("0001_create_runs", _create_runs),
    ("0002_add_approvals", _add_approvals),
]


@dataclass(frozen=True)
class LedgerRun:
    run_id: str
    folder: str
    created_at: str
    task_name: str
    approved: bool
    candidates: list[dict[str, Any]]  # name, strategy, model, status and metrics, as stored

    def candidate_records(self) -> list[CandidateRecord]:
        """The stored candidates as the typed records results.json reads back into."""
        return [read_candidate(c, f"the ledger's run {self.run_id}") for c in self.candidates]


class Ledger:
    """The ledger at `path` (created and migrated on first use)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or ledger_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")  # one migrator at a time
        try:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
            )
            done = {row[0] for row in self._db.execute("SELECT name FROM migrations")}
            for name, migrate in MIGRATIONS:
                if name not in done:
                    migrate(self._db)
                    self._db.execute("INSERT INTO migrations VALUES (?, ?)", (name, _now()))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def applied_migrations(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT name FROM migrations ORDER BY name")]

    def record(self, folder: Path) -> str:
        """Record (or re-record) a run folder in one transaction; returns its run id."""
        run = read_run(folder)
        r = run.results
        rows = []
        for c in r.candidates:
            metrics = {name: asdict(value) for name, value in c.metrics.items()}
            rows.append(
                (r.run_id, c.name, c.strategy, c.model, c.model_fingerprint,
                 prompt_hash(run, c.name), c.params.get("adapter"), c.status, json.dumps(metrics))
            )  # fmt: skip
        outcomes = [
            (r.run_id, p["candidate"], p["example_id"], json.dumps(p["scores"]), p["output"])
            for p in run.predictions
            if p.get("split", "test") == "test"
        ]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("DELETE FROM runs WHERE run_id = ?", (r.run_id,))
            self._db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (r.run_id, str(folder.resolve()), r.created_at, _now(), r.task.name, r.task.hash,
                 r.data.hash, r.code_version, r.seed),
            )  # fmt: skip
            self._db.executemany("INSERT INTO candidates VALUES (?,?,?,?,?,?,?,?,?)", rows)
            self._db.executemany("INSERT INTO outcomes VALUES (?,?,?,?,?)", outcomes)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return r.run_id

    def runs(self, task: str | None = None, candidate: str | None = None) -> list[LedgerRun]:
        """Recorded runs, newest first, filtered by task name and candidate name."""
        query = "SELECT run_id, folder, created_at, task_name FROM runs"
        where, args = [], []
        if task:
            where.append("task_name = ?")
            args.append(task)
        if candidate:
            where.append("run_id IN (SELECT run_id FROM candidates WHERE name = ?)")
            args.append(candidate)
        if where:
            query += " WHERE " + " AND ".join(where)
        found = []
        for run_id, folder, created, task_name in self._db.execute(
            query + " ORDER BY created_at DESC, run_id DESC", args
        ).fetchall():
            rows = self._db.execute(
                "SELECT name, strategy, model, status, metrics FROM candidates WHERE run_id = ?",
                (run_id,),
            ).fetchall()
            candidates = [
                {"name": n, "strategy": s, "model": m, "status": st, "metrics": json.loads(mx)}
                for n, s, m, st, mx in rows
                if candidate is None or n == candidate
            ]
            approved = self._db.execute(
                "SELECT 1 FROM approvals WHERE run_id = ?", (run_id,)
            ).fetchone()
            found.append(
                LedgerRun(run_id, folder, created or "", task_name, bool(approved), candidates)
            )
        return found

    def approve(self, folder: Path) -> str:
        """Record the run (if needed) and mark it the approved baseline of its task."""
        run_id = self.record(folder)
        task = self._db.execute("SELECT task_name FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        self._db.execute("INSERT INTO approvals VALUES (?, ?, ?)", (run_id, task[0], _now()))
        return run_id

    def approved(self, task_name: str) -> Path:
        """The folder of the task's most recently approved run."""
        row = self._db.execute(
            "SELECT r.folder FROM approvals a JOIN runs r USING (run_id) WHERE a.task_name = ? "
            "ORDER BY a.approved_at DESC, a.rowid DESC LIMIT 1",
            (task_name,),
        ).fetchone()
        if row is None:
            raise TunewiseError(
                f"no approved run of task '{task_name}' in {self.path}; "
                "approve one with: tunewise approve RUN_DIR"
            )
        return Path(row[0])

    def resolve(self, reference: str) -> Path:
        """A run folder from a path, or from a run id recorded here."""
        path = Path(reference)
        if (path / "results.json").exists():
            return path
        row = self._db.execute("SELECT folder FROM runs WHERE run_id = ?", (reference,)).fetchone()
        if row is None:
            raise TunewiseError(
                f"'{reference}' is neither a run folder nor a run id in {self.path}"
            )
        return Path(row[0])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
