"""`WorkerPool`: the threads that make the dashboard's (blocking) hub calls.

The SDK blocks, so views hand each hub call to a worker and await it. The pool is small and
fixed, started with the server and stopped with it: it bounds how many calls the dashboard makes
to the hub at once, whatever the number of viewers, and never outlives the server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["WorkerPool"]

T = TypeVar("T")
_Job = tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...]]


class WorkerPool:
    """`size` threads running submitted calls in order of submission."""

    def __init__(self, size: int = 4, name: str = "dashboard-hub") -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(size)
        ]
        self._started = False

    def start(self) -> WorkerPool:
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()
        return self

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, call, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call(*args))
            except BaseException as exc:  # handed to the awaiting view
                future.set_exception(exc)

    def submit(self, call: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((future, call, args))
        return future

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """`call(*args)` on a worker, awaited."""
        return await asyncio.wrap_future(self.submit(call, *args))

    def close(self, timeout: float = 30) -> None:
        """Finish the calls already submitted, then stop every thread."""
        for _ in self._threads:
            self._jobs.put(None)
        if self._started:
            for thread in self._threads:
                thread.join(timeout)
