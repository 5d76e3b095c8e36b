"""Time as the hub stamps it: ISO-8601 UTC text, from an injectable clock."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["NEVER", "Clock", "iso"]

Clock = Callable[[], float]
NEVER = "0001-01-01T00:00:00Z"


# The last second formatted: the hub stamps every packet, and most stamps share their second.
_last: tuple[int, str] = (-1, "")


def iso(moment: float | None = None) -> str:
    """`moment` (Unix seconds; now if None) as IoT Hub writes times: `2026-11-24T14:03:04.123Z`."""
    global _last
    fraction, whole = math.modf(time.time() if moment is None else moment)
    second, micros = int(whole), round(fraction * 1_000_000)  # as datetime rounds it
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    elif micros < 0:
        second, micros = second - 1, micros + 1_000_000
    cached = _last  # one read: another thread may replace it meanwhile
    if cached[0] != second:
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        cached = _last = (second, text)
    return f"{cached[1]}{micros // 1000:03d}Z"
