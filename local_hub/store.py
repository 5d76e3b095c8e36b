"""The SQLite store: one database file in the hub's data directory, in WAL mode.

`synchronous=FULL` makes every commit durable before it returns, so a change the hub has
acknowledged (a PUBACK, a twin response, a 2xx) survives the process being killed.

Device rows (identity, twin, MQTT session) and telemetry are written by **group commit**: a write
is staged on the event loop, and every write staged during one turn of the loop goes to SQLite in
one transaction, with one fsync, on the store's writer thread, while the loop goes on serving. A
caller that must not answer before its write is durable either passes `on_durable` (called on the
loop once the batch holding it has committed; the device endpoint sends its PUBACKs and twin
responses from there) or uses the blocking form, which waits for the batch (the service
endpoint's synchronous paths). Batches commit in the order they were staged, so a row always ends
with its latest value. A twin is stored in sections (tags, desired, reported, and the versions),
so a reported patch rewrites the reported section alone, not the whole document.

Other parts of the hub (jobs, configurations) keep their own tables through `Store.execute` and
`Store.executescript`, on the loop's own connection, committed at once.

The `schema_version` table records the layout the file was written with. A file from a newer hub
(a higher version) is refused rather than misread; an older one is upgraded when opened
(version 1 kept each twin as one JSON document; version 2 keeps its sections apart).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from local_hub import errors

__all__ = [
    "SCHEMA_VERSION", "SECTIONS", "TELEMETRY_KEPT", "SchemaTooNew", "Store", "StoreFailed",
]  # fmt: skip

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    twin TEXT NOT NULL,
    subscriptions TEXT NOT NULL DEFAULT '{}',
    tags TEXT,
    desired TEXT,
    reported TEXT
);
CREATE TABLE IF NOT EXISTS telemetry (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    received TEXT NOT NULL,
    properties TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS telemetry_by_device ON telemetry (device_id, id);
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
"""
SCHEMA_VERSION = 2
TELEMETRY_KEPT = 100
_BUSY_MS = 60_000
# Each stored section of a twin: its column and the twin keys it holds.
SECTIONS: dict[str, tuple[str, ...]] = {
    "tags": ("tags",),
    "desired": ("desired", "desiredMeta"),
    "reported": ("reported", "reportedMeta"),
}
_CORE = ("desiredVersion", "reportedVersion", "version", "etagCounter")

Write = tuple[str, tuple[Any, ...]]


class SchemaTooNew(RuntimeError):
    """The database was written by a newer hub than this one."""


def _twin_columns(twin: dict[str, Any], sections: tuple[str, ...]) -> list[tuple[str, str]]:
    columns = [("twin", json.dumps({key: twin[key] for key in _CORE}))]
    for section in sections:
        keys = SECTIONS[section]
        value = twin[keys[0]] if len(keys) == 1 else [twin[key] for key in keys]
        columns.append((section, json.dumps(value)))
    return columns


def _twin_from_row(core: str, tags: str | None, desired: str | None, reported: str | None
                   ) -> dict[str, Any]:  # fmt: skip
    twin: dict[str, Any] = json.loads(core)
    if tags is None:  # a row written before the sections were split (never after migration)
        return twin
    twin["tags"] = json.loads(tags)
    twin["desired"], twin["desiredMeta"] = json.loads(desired or "[{}, {}]")
    twin["reported"], twin["reportedMeta"] = json.loads(reported or "[{}, {}]")
    return twin


class _Batch:
    """Writes staged in one turn of the loop, and who waits for them."""

    __slots__ = ("callbacks", "done", "waiters", "writes")

    def __init__(self) -> None:
        self.writes: list[Write] = []
        self.callbacks: list[Callable[[], None]] = []
        self.waiters: list[asyncio.Future[None]] = []  # `durable()` calls, told even of failure
        self.done = threading.Event()


class Store:
    """The hub database. Called from the hub's event-loop thread; group commits run on the
    store's own writer thread with a connection of its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = self._connect()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._check_version()
        self._staged: _Batch | None = None
        self._last: _Batch | None = None  # the latest batch handed to the writer
        self._queue: list[_Batch | None] = []
        self._wake = threading.Condition()
        self._writer: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0  # group commits made (for tests and benchmarks)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
        db.execute("PRAGMA synchronous=FULL")
        return db

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
        elif found == 1:
            self._upgrade_from_1()

    def _upgrade_from_1(self) -> None:
        """Split each twin into its sections (version 1 kept one JSON document per twin)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            present = {row[1] for row in self._db.execute("PRAGMA table_info(devices)")}
            for column in SECTIONS:
                if column not in present:
                    self._db.execute(f"ALTER TABLE devices ADD COLUMN {column} TEXT")
            rows = self._db.execute("SELECT device_id, twin FROM devices").fetchall()
            for device_id, twin in rows:
                self._write_twin(self._db, device_id, json.loads(twin), tuple(SECTIONS))
            self._db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        log.info("upgraded %s to schema version %d (%d twins)", self.path, SCHEMA_VERSION,
                 len(rows))  # fmt: skip

    @staticmethod
    def _write_twin(db: sqlite3.Connection, device_id: str, twin: dict[str, Any],
                    sections: tuple[str, ...]) -> None:  # fmt: skip
        columns = _twin_columns(twin, sections)
        assignments = ", ".join(f"{name} = ?" for name, _ in columns)
        db.execute(f"UPDATE devices SET {assignments} WHERE device_id = ?",
                   (*(value for _, value in columns), device_id))  # fmt: skip

    @property
    def schema_version(self) -> int:
        """The layout version recorded in the database."""
        row = self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0])

    def close(self) -> None:
        """Commit what is staged, stop the writer thread and close both connections."""
        self.flush()
        if self._writer is not None:
            with self._wake:
                self._queue.append(None)
                self._wake.notify()
            self._writer.join()
            self._writer = None
        self._db.close()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """Run one statement on the loop's connection (autocommit: durable when it returns).

        A write first waits for the group commit in flight, if any: waiting for it costs one
        fsync, where SQLite's busy handler would sleep in steps of up to 100 ms."""
        if not self._db.in_transaction and sql.lstrip()[:6].upper() != "SELECT":
            self.flush()
        return self._db.execute(sql, params)

    def executescript(self, sql: str) -> None:
        self._db.executescript(sql)

    def begin(self) -> None:
        """Open a transaction on the loop's connection. What was staged commits first; device
        writes made inside it join it (a job's twin patch and its record commit together)."""
        self.flush()
        self._db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        self._db.execute("ROLLBACK")

    # -- group commit ----------------------------------------------------------------------

    def stage(self, writes: list[Write], on_durable: Callable[[], None] | None = None) -> None:
        """Queue writes for the group commit of this loop turn; `on_durable` runs on the loop
        once they are committed. Without a running loop (tools, tests of the store alone) the
        writes commit at once."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._commit(writes)
            if on_durable is not None:
                on_durable()
            return
        if self._db.in_transaction:  # inside begin()/commit(): no await before its commit
            for sql, params in writes:
                self._db.execute(sql, params)
            if on_durable is not None:
                loop.call_soon(on_durable)
            return
        self._loop = loop
        if self._staged is None:
            self._staged = _Batch()
            loop.call_soon(self._hand_over)
        self._staged.writes.extend(writes)
        if on_durable is not None:
            self._staged.callbacks.append(on_durable)

    def when_durable(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the loop once every write staged so far is committed."""
        if self._staged is not None:
            self._staged.callbacks.append(callback)
        elif self._last is not None and not self._last.done.is_set():
            self.stage([], callback)  # an empty batch commits after the one in flight
        else:
            callback()

    async def durable(self) -> None:
        """Wait, while the loop goes on serving, until every write staged so far is committed.

        Raises:
            StoreFailed: the commit failed; none of its writes were acknowledged.
        """
        if self._staged is None:
            if self._last is None or self._last.done.is_set():
                return
            self.stage([])  # an empty batch commits after the one in flight
        assert self._staged is not None
        waiter = asyncio.get_running_loop().create_future()
        self._staged.waiters.append(waiter)
        await waiter

    def flush(self) -> None:
        """Block until every write staged so far is committed (the synchronous paths)."""
        self._hand_over()
        last = self._last
        if last is not None:
            last.done.wait()

    def _write_now(self, writes: list[Write]) -> None:
        """Stage `writes` and wait until they are durable (inside `begin()`: join that
        transaction)."""
        if self._db.in_transaction:
            for sql, params in writes:
                self._db.execute(sql, params)
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            self._commit(writes)
            return
        self.stage(writes)
        self.flush()

    def _hand_over(self) -> None:
        batch, self._staged = self._staged, None
        if batch is None:
            return
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._write_batches, name=f"store-writer:{self.path.name}", daemon=True
            )
            self._writer.start()
        with self._wake:
            self._queue.append(batch)
            self._last = batch
            self._wake.notify()

    def _write_batches(self) -> None:
        db = self._connect()
        try:
            while True:
                with self._wake:
                    while not self._queue:
                        self._wake.wait()
                    taken, self._queue = self._queue, []
                stop = None in taken
                batches = [b for b in taken if b is not None]
                if batches:
                    self._commit_batches(db, batches)
                if stop:
                    return
        finally:
            db.close()

    def _commit_batches(self, db: sqlite3.Connection, batches: list[_Batch]) -> None:
        try:
            self._run(db, [write for batch in batches for write in batch.writes])
        except Exception as exc:
            # Nothing is acknowledged: the callbacks (PUBACKs) are not called; the waiters
            # (service responses) hear of the failure.
            log.exception("the store could not commit %d staged writes", len(batches))
            failure = StoreFailed(f"the hub could not store the change ({type(exc).__name__})")
            waiters = [waiter for batch in batches for waiter in batch.waiters]
            for batch in batches:
                batch.done.set()
            self._on_loop(functools.partial(_fail_all, waiters, failure))
            return
        self.batches += 1
        callbacks = [callback for batch in batches for callback in batch.callbacks]
        waiters = [waiter for batch in batches for waiter in batch.waiters]
        for batch in batches:
            batch.done.set()
        if callbacks or waiters:
            self._on_loop(functools.partial(_run_all, callbacks, waiters))

    def _on_loop(self, call: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(call)
            except RuntimeError:  # the loop closed meanwhile: nobody is left to answer
                pass

    def _commit(self, writes: list[Write]) -> None:
        if self._db.in_transaction:
            for sql, params in writes:
                self._db.execute(sql, params)
        else:
            self._run(self._db, writes)

    @staticmethod
    def _run(db: sqlite3.Connection, writes: list[Write]) -> None:
        if not writes:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in writes:
                db.execute(sql, params)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # -- devices ---------------------------------------------------------------------------

    def load_devices(self) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], dict[str, int]]]:
        rows = self._db.execute(
            "SELECT device_id, identity, twin, tags, desired, reported, subscriptions FROM devices"
        )
        for device_id, identity, core, tags, desired, reported, subscriptions in rows:
            twin = _twin_from_row(core, tags, desired, reported)
            yield device_id, json.loads(identity), twin, json.loads(subscriptions)

    def insert_device(self, device_id: str, identity: dict[str, Any], twin: dict[str, Any]) -> None:
        columns = _twin_columns(twin, tuple(SECTIONS))
        names = ", ".join(name for name, _ in columns)
        marks = ", ".join("?" for _ in columns)
        self._write_now([(
            f"INSERT INTO devices (device_id, identity, {names}) VALUES (?, ?, {marks})",
            (device_id, json.dumps(identity), *(value for _, value in columns)),
        )])  # fmt: skip

    def save_identity(self, device_id: str, identity: dict[str, Any], *, wait: bool = True
                      ) -> None:  # fmt: skip
        """Write an identity; `wait=False` stages it without waiting (connection state)."""
        write = ("UPDATE devices SET identity = ? WHERE device_id = ?",
                 (json.dumps(identity), device_id))  # fmt: skip
        if wait:
            self._write_now([write])
        else:
            self.stage([write])

    def twin_writes(self, device_id: str, twin: dict[str, Any], sections: tuple[str, ...]
                    ) -> list[Write]:  # fmt: skip
        """The writes that store `twin`'s versions and the named sections (only those)."""
        columns = _twin_columns(twin, sections)
        assignments = ", ".join(f"{name} = ?" for name, _ in columns)
        return [(f"UPDATE devices SET {assignments} WHERE device_id = ?",
                 (*(value for _, value in columns), device_id))]  # fmt: skip

    def save_twin(self, device_id: str, twin: dict[str, Any],
                  sections: tuple[str, ...] = tuple(SECTIONS)) -> None:  # fmt: skip
        self._write_now(self.twin_writes(device_id, twin, sections))

    def save_subscriptions(self, device_id: str, subscriptions: dict[str, int]) -> None:
        """Stage a device's MQTT session (its SUBACK waits for `when_durable`)."""
        self.stage([("UPDATE devices SET subscriptions = ? WHERE device_id = ?",
                     (json.dumps(subscriptions), device_id))])  # fmt: skip

    def delete_device(self, device_id: str) -> None:
        self._write_now([
            ("DELETE FROM devices WHERE device_id = ?", (device_id,)),
            ("DELETE FROM telemetry WHERE device_id = ?", (device_id,)),
        ])  # fmt: skip

    # -- telemetry -------------------------------------------------------------------------

    def add_telemetry(
        self, device_id: str, received: str, properties: dict[str, str], body: bytes
    ) -> None:
        """Stage a telemetry message (a QoS 1 PUBACK waits for `when_durable`)."""
        self.stage([
            ("INSERT INTO telemetry (device_id, received, properties, body) VALUES (?, ?, ?, ?)",
             (device_id, received, json.dumps(properties), body)),
            ("DELETE FROM telemetry WHERE device_id = ? AND id <= "
             "(SELECT id FROM telemetry WHERE device_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
             (device_id, device_id, TELEMETRY_KEPT)),
        ])  # fmt: skip

    def telemetry(self, device_id: str) -> list[tuple[str, dict[str, str], bytes]]:
        self.flush()  # read what was staged
        rows = self._db.execute(
            "SELECT received, properties, body FROM telemetry WHERE device_id = ? ORDER BY id",
            (device_id,),
        )
        return [(received, json.loads(props), bytes(body)) for received, props, body in rows]


class StoreFailed(errors.ServerError):
    """The store could not commit a change (the disk is full or failing): answered as IoT Hub
    answers an internal failure, and nothing of the change was acknowledged."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=500)


def _fail_all(waiters: list[asyncio.Future[None]], failure: Exception) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_exception(failure)


def _run_all(
    callbacks: list[Callable[[], None]], waiters: Sequence[asyncio.Future[None]] = ()
) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("a callback after a group commit failed")
