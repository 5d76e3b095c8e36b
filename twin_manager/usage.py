"""What a `TwinManager` has asked of the hub, counted per IoT Hub throttle.

IoT Hub meters its service API in throttles (queries, twin reads, twin updates, configurations,
jobs operations, identity registry operations, direct methods), each with its own rate per tier.
Code that must live within a tier (the campaign controller's pacing, a test asserting how many
queries a tick costs) needs to know what it spent, and on which throttle, without every caller
counting for itself. So the one seam that sends requests (`_sdk.Sdk.call`) files every request
it sent here, by the HTTP method and path the SDK put on the wire, and notes each one the hub
refused with 429 (a throttle hit, whether or not a retry later got through).

Counts only grow; a reader takes a `snapshot()` before and after the work it wants to measure
and subtracts (`since`). Thread-safe: one manager is shared by threads.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["THROTTLES", "Usage", "UsageSnapshot", "throttle_of"]

THROTTLES = (
    "queries",
    "twinReads",
    "twinUpdates",
    "directMethods",
    "identityRegistryOperations",
    "jobsOperations",
    "configurations",
)

_RULES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"^/devices/query$"), "queries"),
    ("POST", re.compile(r"^/twins/[^/]+/methods$"), "directMethods"),
    ("GET", re.compile(r"^/twins/[^/]+$"), "twinReads"),
    ("PATCH", re.compile(r"^/twins/[^/]+$"), "twinUpdates"),
    ("PUT", re.compile(r"^/twins/[^/]+$"), "twinUpdates"),
    ("*", re.compile(r"^/devices(/[^/]+)?$"), "identityRegistryOperations"),
    ("*", re.compile(r"^/jobs/v2(/.*)?$"), "jobsOperations"),
    ("*", re.compile(r"^/configurations(/.*)?$"), "configurations"),
)


def throttle_of(method: str, url: str) -> str | None:
    """The IoT Hub throttle a service request draws on (None: one no throttle meters).

    Args:
        method: the HTTP method.
        url: the request's URL (or just its path).
    """
    path = urlsplit(url).path
    for rule_method, pattern, throttle in _RULES:
        if rule_method in ("*", method.upper()) and pattern.match(path):
            return throttle
    return None


def units_of(method: str, url: str, body: bytes | str | None) -> int:
    """What a request costs its throttle: one, but a bulk registry operation (`POST /devices`)
    costs one a device, as IoT Hub meters it."""
    if method.upper() != "POST" or urlsplit(url).path != "/devices" or not body:
        return 1
    try:
        entries = json.loads(body)
    except ValueError:
        return 1
    return max(1, len(entries)) if isinstance(entries, list) else 1


@dataclass(frozen=True)
class UsageSnapshot:
    """Requests sent and requests refused with 429, per throttle, at one moment."""

    sent: Mapping[str, int] = field(default_factory=dict)
    throttled: Mapping[str, int] = field(default_factory=dict)

    def since(self, earlier: UsageSnapshot) -> UsageSnapshot:
        """What was spent between `earlier` and this snapshot."""
        sent, throttled = self.sent, self.throttled
        return UsageSnapshot(_minus(sent, earlier.sent), _minus(throttled, earlier.throttled))

    def get(self, throttle: str) -> int:
        """Requests sent on `throttle` (0 when none)."""
        return self.sent.get(throttle, 0)


def _minus(now: Mapping[str, int], then: Mapping[str, int]) -> dict[str, int]:
    return {k: n - then.get(k, 0) for k, n in now.items() if n != then.get(k, 0)}


class Usage:
    """The running counts of one manager (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: Counter[str] = Counter()
        self._throttled: Counter[str] = Counter()

    def record(self, method: str, url: str, status: int | None, units: int = 1) -> None:
        """File one request the SDK sent (`status` None: no answer came) as `units` of its
        throttle (see `units_of`)."""
        throttle = throttle_of(method, url)
        if throttle is None:
            return
        with self._lock:
            self._sent[throttle] += units
            if status == 429:
                self._throttled[throttle] += 1

    def snapshot(self) -> UsageSnapshot:
        with self._lock:
            return UsageSnapshot(dict(self._sent), dict(self._throttled))
