"""The provisioning service's SQLite store: enrollments, enrollment groups, registration states
and registration operations, plus the service's own settings (its ID scope).

One file, `dps.db`, in WAL mode with `synchronous=FULL` like the hub's store: an enrollment the
CLI created or an assignment the service answered survives a crash. The service and the CLI may
open it at the same time (SQLite's locking; a busy timeout covers short overlaps). Documents are
kept as JSON in DPS's own REST shapes (`IndividualEnrollment`, `EnrollmentGroup`,
`DeviceRegistrationState`).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from pathlib import Path
from typing import Any

__all__ = ["ProvisioningStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS enrollments (registration_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS enrollment_groups (group_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS registrations (registration_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS operations (
    operation_id TEXT PRIMARY KEY,
    registration_id TEXT NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_TABLES = {
    "enrollments": "registration_id",
    "enrollment_groups": "group_id",
    "registrations": "registration_id",
}


class ProvisioningStore:
    """A connection to `dps.db` (created if missing), used from one thread at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @property
    def id_scope(self) -> str:
        """The service's ID scope, made once (`0ne` and eight hex digits, as DPS shapes it)."""
        row = self._db.execute("SELECT value FROM settings WHERE key = 'idScope'").fetchone()
        if row is not None:
            return str(row[0])
        scope = f"0ne{secrets.token_hex(4).upper()}"
        self._db.execute(
            "INSERT OR IGNORE INTO settings (key, value) VALUES ('idScope', ?)", (scope,)
        )
        row = self._db.execute("SELECT value FROM settings WHERE key = 'idScope'").fetchone()
        return str(row[0])

    # -- documents ---------------------------------------------------------------------------

    def get(self, table: str, key: str) -> dict[str, Any] | None:
        column = _TABLES[table]
        row = self._db.execute(f"SELECT doc FROM {table} WHERE {column} = ?", (key,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def all(self, table: str) -> list[dict[str, Any]]:
        column = _TABLES[table]
        rows = self._db.execute(f"SELECT doc FROM {table} ORDER BY {column}")
        return [dict(json.loads(doc)) for (doc,) in rows]

    def insert(self, table: str, key: str, doc: dict[str, Any]) -> bool:
        """Add a document; False when one with that key exists (nothing changed)."""
        column = _TABLES[table]
        cursor = self._db.execute(
            f"INSERT OR IGNORE INTO {table} ({column}, doc) VALUES (?, ?)", (key, json.dumps(doc))
        )
        return cursor.rowcount == 1

    def put(self, table: str, key: str, doc: dict[str, Any]) -> None:
        column = _TABLES[table]
        self._db.execute(
            f"INSERT OR REPLACE INTO {table} ({column}, doc) VALUES (?, ?)", (key, json.dumps(doc))
        )

    def delete(self, table: str, key: str) -> bool:
        column = _TABLES[table]
        cursor = self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (key,))
        return cursor.rowcount == 1

    # -- operations --------------------------------------------------------------------------

    def add_operation(
        self, operation_id: str, registration_id: str, request: dict[str, Any]
    ) -> None:
        self._db.execute(
            "INSERT INTO operations (operation_id, registration_id, status, request) "
            "VALUES (?, ?, 'assigning', ?)",
            (operation_id, registration_id, json.dumps(request)),
        )

    def operation(self, operation_id: str) -> tuple[str, str, dict[str, Any]] | None:
        """(registration id, status, request) of an operation, or None."""
        row = self._db.execute(
            "SELECT registration_id, status, request FROM operations WHERE operation_id = ?",
            (operation_id,),
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]), dict(json.loads(row[2])))

    def set_operation_status(self, operation_id: str, status: str, result: dict[str, Any]) -> None:
        self._db.execute(
            "UPDATE operations SET status = ?, request = ? WHERE operation_id = ?",
            (status, json.dumps(result), operation_id),
        )
