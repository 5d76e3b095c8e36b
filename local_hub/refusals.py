"""One log line per refused hostile input, rate-limited per source.

Any device (or any client of the service endpoint) can send garbage as fast as its link allows;
if each refusal wrote a traceback, or even a line, a single device could fill the hub's disk. A
`RefusalLog` writes at most `burst` lines per source (a device id, or a client address) per
`period` seconds, and when a source's period ends with lines held back, one summary line saying
how many. The refusals themselves always reach the client; only the log is rate-limited.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RefusalLog"]

_MAX_SOURCES = 4096


@dataclass
class _Window:
    started: float
    logged: int = 0
    held_back: int = 0


class RefusalLog:
    """Logs refused inputs, at most `burst` lines per source per `period` seconds."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 5,
        period: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._burst = burst
        self._period = period
        self._clock = clock
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def refused(self, source: str, what: str, reason: str) -> None:
        """Record that `what` from `source` was refused because of `reason` (a sentence part).

        `reason` comes from the hub's own checks and never quotes the input at length.
        """
        now = self._clock()
        window = self._windows.get(source)
        if window is None or now - window.started >= self._period:
            if window is not None and window.held_back:
                self._log.warning(
                    "%s: %d more hostile inputs were refused in the last %.0f s",
                    source,
                    window.held_back,
                    self._period,
                )
            window = _Window(started=now)
            self._windows[source] = window
        self._windows.move_to_end(source)
        while len(self._windows) > _MAX_SOURCES:
            self._windows.popitem(last=False)
        if window.logged < self._burst:
            window.logged += 1
            self._log.warning("%s: refused %s: %s", source, what, reason)
        else:
            window.held_back += 1
