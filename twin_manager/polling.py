"""Waiting for the hub to get somewhere: read until the answer says done, or give up in time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["poll_until"]

T = TypeVar("T")


def poll_until(
    read: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float,
    poll: float,
    late: Callable[[T], str],
) -> T:
    """Call `read` every `poll` seconds until `done` says yes of what it returned.

    Raises:
        TimeoutError: `timeout` seconds passed first; its message is `late(last answer)`.
    """
    deadline = time.monotonic() + timeout
    while True:
        answer = read()
        if done(answer):
            return answer
        if time.monotonic() >= deadline:
            raise TimeoutError(late(answer))
        time.sleep(poll)
