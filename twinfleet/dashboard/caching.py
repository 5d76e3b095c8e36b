"""One query cache and one query budget for every viewer of the dashboard.

IoT Hub meters queries (an S1 unit allows 20 a minute, and the campaign controller needs its share),
so what the dashboard asks of the hub must not grow with the number of open browser tabs. Every
view therefore reads through one `QueryCache`:

- a result is kept for `ttl` seconds and served to every request for the same key in that time;
- concurrent requests for a key that is being fetched wait for that one fetch (single flight);
- each fetch declares what it costs in hub queries (a page of a query is one) and is made only if
  the `QueryBudget` (a token bucket refilled at `per_minute`) can pay for it. When it cannot, the
  last value is served marked stale, or `BudgetSpent` says when the next query is possible.

So N tabs polling every two seconds cost at most `per_minute` hub queries a minute, whatever N is.
Direct reads of one twin are not queries (IoT Hub meters them separately) and are not cached.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["BudgetSpent", "Cached", "QueryBudget", "QueryCache"]


class BudgetSpent(Exception):
    """The query budget cannot pay for a fetch now and no earlier value is cached."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            f"The dashboard's query budget is spent for now (it keeps the hub within its query "
            f"quota); the next query is possible in {math.ceil(retry_after)} s."
        )
        self.retry_after = retry_after


class QueryBudget:
    """A token bucket of hub queries: `per_minute` refill, at most `per_minute` saved up.

    Thread-safe, so the CLI's and the web views' threads can share one budget.
    """

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0:
            raise ValueError("the query budget must be a positive number of queries per minute")
        self.per_minute = per_minute
        self._clock = clock
        self._tokens = float(per_minute)
        self._last = clock()
        self._lock = threading.Lock()
        self.spent = 0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(
            float(self.per_minute), self._tokens + (now - self._last) * self.per_minute / 60
        )
        self._last = now

    def take(self, cost: int) -> float:
        """Spend `cost` queries; returns 0.0, or the seconds to wait when it cannot pay now."""
        with self._lock:
            self._refill()
            if self._tokens >= cost:
                self._tokens -= cost
                self.spent += cost
                return 0.0
            return (cost - self._tokens) * 60 / self.per_minute

    @property
    def available(self) -> float:
        with self._lock:
            self._refill()
            return self._tokens


@dataclass(frozen=True)
class Cached:
    """A value with when it was fetched (wall clock) and whether it is older than the TTL."""

    value: Any
    fetched_at: float
    stale: bool = False


@dataclass
class _Entry:
    value: Any
    fetched_at: float
    fetched_mono: float


class QueryCache:
    """Results by key, fetched at most once per `ttl` and only as the budget allows.

    Args:
        budget: the shared query budget.
        ttl: seconds a result is served without asking the hub again.
        clock: monotonic time, injectable for tests.
        max_entries: the oldest entries are dropped past this many.
    """

    def __init__(
        self,
        budget: QueryBudget,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 512,
    ) -> None:
        self.budget = budget
        self.ttl = ttl
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[tuple[Any, ...], _Entry] = {}
        self._inflight: dict[tuple[Any, ...], asyncio.Future[_Entry]] = {}
        self.hits = 0
        self.fetches = 0

    async def get(
        self, key: tuple[Any, ...], fetch: Callable[[], Awaitable[Any]], *, cost: int = 1
    ) -> Cached:
        """The value for `key`: cached, fetched (paying `cost` queries), or stale.

        Raises:
            BudgetSpent: nothing cached and the budget cannot pay now.
            Exception: whatever `fetch` raises (nothing is cached then).
        """
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and now - entry.fetched_mono < self.ttl:
            self.hits += 1
            return Cached(entry.value, entry.fetched_at)
        pending = self._inflight.get(key)
        if pending is not None:
            shared = await asyncio.shield(pending)
            self.hits += 1
            return Cached(shared.value, shared.fetched_at)
        wait = self.budget.take(cost)
        if wait:
            if entry is not None:
                return Cached(entry.value, entry.fetched_at, stale=True)
            raise BudgetSpent(wait)
        future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await fetch()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        else:
            fresh = _Entry(value, time.time(), self._clock())
            self._store(key, fresh)
            future.set_result(fresh)
            self.fetches += 1
            return Cached(value, fresh.fetched_at)
        finally:
            del self._inflight[key]

    def _store(self, key: tuple[Any, ...], entry: _Entry) -> None:
        self._entries.pop(key, None)
        self._entries[key] = entry
        while len(self._entries) > self._max_entries:
            del self._entries[next(iter(self._entries))]

    def forget(self, predicate: Callable[[tuple[Any, ...]], bool]) -> None:
        """Drop entries (after an action changed what they show)."""
        for key in [k for k in self._entries if predicate(k)]:
            del self._entries[key]
