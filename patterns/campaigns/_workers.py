"""Doing one tick's per-device requests side by side.

A tick's writes to different devices are independent (each is guarded by its own twin's etag),
and each is a round trip to the hub: done one after another, a controller moves no faster than
one round trip per write, well below an S1 hub's 50 twin updates a second on a busy machine.
`each` runs them on a few threads and returns their results in order. Small batches (what most
ticks have) stay on the calling thread. Every worker closes its SDK clients as it ends
(`TwinManager.release_thread`), so no HTTP session outlives the tick.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import TypeVar

from twin_manager import TwinManager

__all__ = ["PARALLEL_FROM", "WORKERS", "chunks", "each"]

T = TypeVar("T")
R = TypeVar("R")

WORKERS = 8  # threads for a tick's per-device requests
PARALLEL_FROM = 32  # fewer items than this run on the calling thread


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last may be shorter)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def each(fleet: TwinManager, items: Sequence[T], work: Callable[[T], R],
         workers: int = WORKERS) -> list[R]:  # fmt: skip
    """`work(item)` for every item, on up to `workers` threads; the results in order. The first
    exception raised by any item is raised once all threads have stopped (the others still
    finish the item they hold, and take no new one)."""
    if workers <= 1 or len(items) < PARALLEL_FROM:
        return [work(item) for item in items]
    results: list[R | None] = [None] * len(items)
    failures: list[BaseException] = []
    lock = threading.Lock()
    indices = iter(range(len(items)))

    def run() -> None:
        try:
            while True:
                with lock:
                    if failures:
                        return
                    index = next(indices, None)
                if index is None:
                    return
                try:
                    results[index] = work(items[index])
                except BaseException as exc:
                    with lock:
                        failures.append(exc)
                    return
        finally:
            fleet.release_thread()

    threads = [threading.Thread(target=run, name=f"campaign-worker-{n}")
               for n in range(min(workers, len(items)))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return results  # type: ignore[return-value]
