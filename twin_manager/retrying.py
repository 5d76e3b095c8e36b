"""Retries for transient failures: capped exponential backoff with full jitter.

Only failures that left nothing half-done are retried: 429 (the hub refused the request), 5xx
other than 504, and connection errors. A `Throttled` error's `Retry-After` is honoured as a lower
bound on the wait. Everything else is raised at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from twin_manager import errors

__all__ = ["RetryPolicy", "is_transient"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """True for failures worth trying again."""
    if isinstance(exc, errors.Throttled | errors.HubUnavailable):
        return True
    return isinstance(exc, errors.HubError) and exc.status >= 500 and exc.status != 504


@dataclass
class RetryPolicy:
    """How often and how long to retry.

    Attributes:
        attempts: total tries, the first included.
        base: the first backoff, in seconds.
        cap: the longest backoff, in seconds.
        sleep: how to wait (injectable for tests).
        jitter: a random number in [0, 1) per wait (injectable for tests).
    """

    attempts: int = 5
    base: float = 0.2
    cap: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = field(default_factory=lambda: random.random)

    def delay(self, attempt: int, exc: BaseException) -> float:
        """How long to wait after failed try number `attempt` (1-based)."""
        backoff = min(self.cap, self.base * 2.0 ** (attempt - 1)) * self.jitter()
        if isinstance(exc, errors.Throttled):
            backoff = max(backoff, min(self.cap, exc.retry_after))
        return backoff

    def call(self, operation: Callable[[], T], what: str) -> T:
        """Run `operation`, retrying transient failures."""
        for attempt in range(1, self.attempts + 1):
            try:
                return operation()
            except errors.HubError as exc:
                if attempt == self.attempts or not is_transient(exc):
                    raise
                wait = self.delay(attempt, exc)
                log.info("%s failed (%s); retry %d in %.2f s", what, exc.status, attempt, wait)
                self.sleep(wait)
        raise AssertionError("unreachable")
