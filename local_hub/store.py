"""The SQLite store: one database file in the hub's data directory, in WAL mode.

`synchronous=FULL` makes every commit durable before the call returns, so a change the hub has
acknowledged (a PUBACK, a 2xx) survives the process being killed. Each device is one row holding
its identity, its twin and its MQTT session as JSON; telemetry is a bounded log beside it. Other
parts of the hub (jobs, configurations) add their own tables through `Store.executescript`.

The `schema_version` table records the layout the file was written with. A file from a newer hub
(a higher version) is refused rather than misread; an older one is upgraded when a later layout
needs it (there is one layout so far).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_VERSION", "TELEMETRY_KEPT", "SchemaTooNew", "Store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    twin TEXT NOT NULL,
    subscriptions TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS telemetry (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    received TEXT NOT NULL,
    properties TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS telemetry_by_device ON telemetry (device_id, id);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
"""
SCHEMA_VERSION = 1
TELEMETRY_KEPT = 100


class SchemaTooNew(RuntimeError):
    """The database was written by a newer hub than this one."""


class Store:
    """A connection to the hub database, used from the hub's event-loop thread only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._check_version()

    def _check_version(self) -> None:
        row = self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        found = None if row is None else row[0]
        if found is None:
            self._db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        elif found > SCHEMA_VERSION:
            self._db.close()
            raise SchemaTooNew(
                f"{self.path} was written by a newer hub (schema version {found}; this hub "
                f"knows up to {SCHEMA_VERSION}); upgrade twinfleet to open it."
            )

    @property
    def schema_version(self) -> int:
        """The layout version recorded in the database."""
        row = self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """Run one statement (autocommit: durable when it returns)."""
        return self._db.execute(sql, params)

    def executescript(self, sql: str) -> None:
        self._db.executescript(sql)

    def begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        self._db.execute("ROLLBACK")

    # -- devices ---------------------------------------------------------------------------

    def load_devices(self) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], dict[str, int]]]:
        rows = self._db.execute("SELECT device_id, identity, twin, subscriptions FROM devices")
        for device_id, identity, twin, subscriptions in rows:
            yield device_id, json.loads(identity), json.loads(twin), json.loads(subscriptions)

    def insert_device(self, device_id: str, identity: dict[str, Any], twin: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO devices (device_id, identity, twin) VALUES (?, ?, ?)",
            (device_id, json.dumps(identity), json.dumps(twin)),
        )

    def save_identity(self, device_id: str, identity: dict[str, Any]) -> None:
        self._db.execute(
            "UPDATE devices SET identity = ? WHERE device_id = ?", (json.dumps(identity), device_id)
        )

    def save_twin(self, device_id: str, twin: dict[str, Any]) -> None:
        self._db.execute(
            "UPDATE devices SET twin = ? WHERE device_id = ?", (json.dumps(twin), device_id)
        )

    def save_subscriptions(self, device_id: str, subscriptions: dict[str, int]) -> None:
        self._db.execute(
            "UPDATE devices SET subscriptions = ? WHERE device_id = ?",
            (json.dumps(subscriptions), device_id),
        )

    def delete_device(self, device_id: str) -> None:
        self._db.execute("DELETE FROM devices WHERE device_id = ?", (device_id,))
        self._db.execute("DELETE FROM telemetry WHERE device_id = ?", (device_id,))

    # -- telemetry -------------------------------------------------------------------------

    def add_telemetry(
        self, device_id: str, received: str, properties: dict[str, str], body: bytes
    ) -> None:
        self._db.execute(
            "INSERT INTO telemetry (device_id, received, properties, body) VALUES (?, ?, ?, ?)",
            (device_id, received, json.dumps(properties), body),
        )
        self._db.execute(
            "DELETE FROM telemetry WHERE device_id = ? AND id <= "
            "(SELECT id FROM telemetry WHERE device_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (device_id, device_id, TELEMETRY_KEPT),
        )

    def telemetry(self, device_id: str) -> list[tuple[str, dict[str, str], bytes]]:
        rows = self._db.execute(
            "SELECT received, properties, body FROM telemetry WHERE device_id = ? ORDER BY id",
            (device_id,),
        )
        return [(received, json.loads(props), bytes(body)) for received, props, body in rows]

    # -- settings --------------------------------------------------------------------------

    def setting(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))
