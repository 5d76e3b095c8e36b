"""Times in the twin contract: ISO-8601 UTC with milliseconds and a `Z`, as IoT Hub writes them.

One helper for the device and the back end alike, so every time in a twin has one shape and
compares as text in the order it happened.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso", "iso_now", "parse_iso"]


def iso(moment: float) -> str:
    """Unix seconds as `2026-11-24T18:37:04.123Z`."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iso_now() -> str:
    """The current time as `iso` writes it."""
    return iso(datetime.now(UTC).timestamp())


def parse_iso(text: str) -> float:
    """Unix seconds of an ISO-8601 time (a `Z` or an offset; naive times are taken as UTC).

    Raises:
        ValueError: `text` is not an ISO-8601 time.
    """
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
