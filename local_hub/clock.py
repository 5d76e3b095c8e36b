"""Time as the hub stamps it: ISO-8601 UTC text, from an injectable clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["NEVER", "Clock", "iso"]

Clock = Callable[[], float]
NEVER = "0001-01-01T00:00:00Z"


def iso(moment: float | None = None) -> str:
    """`moment` (Unix seconds; now if None) as IoT Hub writes times: `2026-11-24T14:03:04.123Z`."""
    stamp = datetime.fromtimestamp(time.time() if moment is None else moment, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
