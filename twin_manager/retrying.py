"""Retries for transient failures: capped exponential backoff with full jitter.

Only failures that left nothing half-done are retried: 429 (the hub refused the request), 5xx
other than 504, and connection errors. Everything else is raised at once.

Throttling is not failure. IoT Hub answers 429 when a quota of its tier is used up (S1: 20
queries a minute, 50 twin updates a second, ...), and the request succeeds once the quota has
refilled. So a 429 does not spend one of the policy's `attempts`: it is retried for as long as
the time spent waiting on throttles stays within `throttle_budget` seconds, each wait at least the
hub's `Retry-After` (when it sends one) and otherwise the jittered backoff. Only when that budget
is spent does the caller see `Throttled`.
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
        attempts: total tries for 5xx and connection errors, the first included.
        base: the first backoff, in seconds.
        throttle_budget: the seconds a call may spend waiting out 429s before `Throttled` is
            raised.
        cap: the longest backoff, in seconds.
        sleep: how to wait (injectable for tests).
        jitter: a random number in [0, 1) per wait (injectable for tests).
    """

    attempts: int = 5
    base: float = 0.2
    cap: float = 10.0
    throttle_budget: float = 120.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = field(default_factory=lambda: random.random)

    def delay(self, attempt: int, exc: BaseException) -> float:
        """How long to wait after failed try number `attempt` (1-based)."""
        backoff = min(self.cap, self.base * 2.0 ** (attempt - 1)) * self.jitter()
        if isinstance(exc, errors.Throttled):
            backoff = max(backoff, exc.retry_after)
        return backoff

    def call(self, operation: Callable[[], T], what: str) -> T:
        """Run `operation`, retrying transient failures (throttles within `throttle_budget`)."""
        attempt = 0
        throttled_for = 0.0
        while True:
            attempt += 1
            try:
                return operation()
            except errors.HubError as exc:
                if not is_transient(exc):
                    raise
                wait = self.delay(attempt, exc)
                if isinstance(exc, errors.Throttled):
                    if throttled_for + wait > self.throttle_budget:
                        raise
                    throttled_for += wait
                elif attempt >= self.attempts:
                    raise
                log.info("%s failed (%s); retry %d in %.2f s", what, exc.status, attempt, wait)
                self.sleep(wait)
