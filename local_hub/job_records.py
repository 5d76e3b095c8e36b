"""`JobRecords`: one store table of job documents and the tasks running them, on the hub's loop.

Scheduled jobs (`jobs.py`) and import/export jobs (`import_export.py`) keep each job as one JSON
document keyed by its id, run each on a task of its own, and cancel those tasks on close; this is
that shared part. The table is created by the module that owns it (its schema).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any

from local_hub import store

__all__ = ["JobRecords"]


class JobRecords:
    """The job documents in `table` (columns `job_id`, `doc`) and their running tasks.

    Args:
        db: the hub's store.
        table: the table's name (a constant of the caller's, never user input).
        task_prefix: running tasks are named `<task_prefix>-<job id>`.
    """

    def __init__(self, db: store.Store, table: str, task_prefix: str) -> None:
        self._store = db
        self._table = table
        self._task_prefix = task_prefix
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def load(self, job_id: str) -> dict[str, Any] | None:
        """The stored job, or None when there is none with that id."""
        row = self._store.execute(
            f"SELECT doc FROM {self._table} WHERE job_id = ?", (job_id,)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def save(self, job: dict[str, Any]) -> None:
        """Store the job (insert, or replace the one with its `jobId`)."""
        self._store.execute(
            f"INSERT OR REPLACE INTO {self._table} (job_id, doc) VALUES (?, ?)",
            (job["jobId"], json.dumps(job)),
        )

    def all(self) -> list[dict[str, Any]]:
        """Every stored job, in the table's order."""
        rows = self._store.execute(f"SELECT doc FROM {self._table}").fetchall()
        return [json.loads(doc) for (doc,) in rows]

    def spawn(self, job_id: str, run: Coroutine[Any, Any, None]) -> None:
        """Run the job's coroutine on a task of its own, forgotten when it ends."""
        task = asyncio.get_running_loop().create_task(run, name=f"{self._task_prefix}-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job_id, None))

    def cancel_task(self, job_id: str) -> None:
        """Cancel the job's task, if it is running."""
        task = self._tasks.pop(job_id, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        """Cancel every running task and wait for them to end."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
