"""IoT Hub's operation throttles, per tier and unit, as token buckets with traffic shaping.

Microsoft's "IoT Hub quotas and throttling" page gives each throttle a rate per tier, some per unit
(`1.67/sec/unit`), some fixed (`100/sec`), some the higher of the two. It says the throttles are
"applied in minute ranges", and describes traffic shaping: requests above the rate are first
accepted at once for a while, then queued and served at the rate, and refused with
`429 ThrottlingException` only once that queue is full. Its example: an S1 hub (100 sends/sec)
receiving 200 sends/sec serves them at once "for the first minute or two", then queues, then
refuses.

This module models that as one token bucket per throttle:

- the bucket fills at the throttle's rate and holds one minute of it (the "minute range"), so a
  hub that was idle takes a minute's worth at once: 200/sec against 100/sec drains it in the
  first minute, as in Microsoft's example;
- a request that finds too few tokens takes them anyway (the bucket goes below zero) and waits
  until the rate has paid them back: that is the shaping queue, bounded to `shaping` seconds of
  waiting (the "or two" minutes are this queue);
- a request that would wait longer is refused with `Throttled` (429 on REST, twin status 429 on
  MQTT), its `retry_after` the seconds until it would fit in the queue. A refused request takes
  nothing.

Costs are in the throttle's units: one request, except direct methods (metered in 4 KB of
payload, as the page's 160 KB/sec/unit) and bulk registry calls (one per device). Jobs do not
take "jobs device operations" from clients: the hub paces each job's device work through
`pace`, which always waits.

Without a tier there are no quotas: `Quotas` is simply not created.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from local_hub import errors
from local_hub.clock import Clock

__all__ = [
    "METHOD_METER",
    "MINUTE",
    "SHAPING",
    "THROTTLES",
    "TIERS",
    "Bucket",
    "Quotas",
    "Throttle",
    "limits",
    "max_active_jobs",
]

MINUTE = 60.0
SHAPING = 10.0  # seconds a request may wait in the shaping queue before it is refused
METHOD_METER = 4096  # direct method payloads are metered in 4 KB
TIERS = ("F1", "S1", "S2", "S3")
_MAX_UNITS = {"F1": 1, "S1": 200, "S2": 200, "S3": 10}
_ACTIVE_JOBS = {"F1": 1, "S1": 1, "S2": 5, "S3": 10}


@dataclass(frozen=True)
class Throttle:
    """One documented throttle: its name (as `GET /quotas` shows it) and what it covers."""

    name: str
    covers: str
    unit: str = "operations"


THROTTLES = (
    Throttle("identityRegistryOperations", "device create, get, list, update, delete; bulk"),
    Throttle("newDeviceConnections", "MQTT CONNECTs accepted"),
    Throttle("deviceToCloudSends", "telemetry messages"),
    Throttle("directMethods", "direct method calls, per 4 KB of payload", "4 KB meters"),
    Throttle("queries", "POST /devices/query, each page"),
    Throttle("twinReads", "device twin GETs (MQTT) and service GET /twins"),
    Throttle("twinUpdates", "reported patches (MQTT) and service PATCH/PUT /twins"),
    Throttle("jobsOperations", "job create, get, query, cancel"),
    Throttle("jobsDeviceOperations", "each device's twin update or method in a job"),
    Throttle("configurations", "configuration create, get, list, update, delete, test"),
)


def limits(tier: str, units: int) -> dict[str, float]:
    """Each throttle's rate per second for the whole hub, from the documented table.

    Raises:
        ValueError: an unknown tier, or a unit count the tier does not allow.
    """
    if tier not in TIERS:
        raise ValueError(f"Unknown IoT Hub tier {tier!r}; use one of {', '.join(TIERS)}.")
    if not 1 <= units <= _MAX_UNITS[tier]:
        raise ValueError(f"Tier {tier} has 1 to {_MAX_UNITS[tier]} units, not {units}.")
    u = units
    per_minute = 5000.0 if tier == "S3" else 100.0
    if tier in ("F1", "S1"):
        connections = max(100.0, 12.0 * u)
        twin_reads, twin_updates, job_devices = 100.0, 50.0, 10.0
        methods_kb = 160.0 * u
    elif tier == "S2":
        connections = 120.0 * u
        twin_reads, twin_updates = max(100.0, 10.0 * u), max(50.0, 5.0 * u)
        job_devices = max(10.0, 1.0 * u)
        methods_kb = 480.0 * u
    else:
        connections = 6000.0 * u
        twin_reads, twin_updates, job_devices = 500.0 * u, 250.0 * u, 50.0 * u
        methods_kb = 24.0 * 1024 * u
    return {
        "identityRegistryOperations": per_minute * u / MINUTE,
        "newDeviceConnections": connections,
        "deviceToCloudSends": connections,
        "directMethods": methods_kb / (METHOD_METER / 1024),
        "queries": (1000.0 if tier == "S3" else 20.0) * u / MINUTE,
        "twinReads": twin_reads,
        "twinUpdates": twin_updates,
        "jobsOperations": per_minute * u / MINUTE,
        "jobsDeviceOperations": job_devices,
        "configurations": 20.0 * u / MINUTE,
    }


def max_active_jobs(tier: str) -> int:
    """How many jobs may be scheduled or running at once (1 on F1 and S1, 5 on S2, 10 on S3)."""
    return _ACTIVE_JOBS[tier]


@dataclass
class Bucket:
    """A token bucket: `rate` tokens a second, at most `capacity` banked; below zero is the
    shaping queue."""

    rate: float
    capacity: float
    tokens: float
    updated: float
    admitted: int = 0
    shaped: int = 0
    refused: int = 0

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = max(self.updated, now)

    def take(self, cost: float, now: float, shaping: float) -> float:
        """Take `cost` tokens; returns how long the request must wait first (0: at once).

        Raises:
            Throttled: it would wait more than `shaping` seconds; nothing is taken.
        """
        self._refill(now)
        wait = max(0.0, (cost - self.tokens) / self.rate)
        if wait > shaping:
            self.refused += 1
            raise errors.Throttled("", retry_after=wait - shaping)
        self.tokens -= cost
        self.admitted += 1
        if wait > 0:
            self.shaped += 1
        return wait

    def available(self, now: float) -> float:
        self._refill(now)
        return self.tokens


Sleep = Callable[[float], Awaitable[Any]]


class Quotas:
    """The throttles of one hub on `tier` with `units` units.

    Args:
        tier: F1, S1, S2 or S3.
        units: the hub's units (F1: 1; S1 and S2: up to 200; S3: up to 10).
        clock: seconds, monotonic (injectable for tests).
        sleep: how to wait out the shaping queue (injectable for tests).
        shaping: the longest a request waits in the shaping queue before it is refused.
        burst: the seconds of each rate a bucket banks (one minute, the documented "minute
            range"); at least one request's worth.

    Raises:
        ValueError: an unknown tier or a unit count the tier does not allow.
    """

    def __init__(
        self,
        tier: str,
        units: int = 1,
        *,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        shaping: float = SHAPING,
        burst: float = MINUTE,
    ) -> None:
        self.rates = limits(tier, units)
        self.tier = tier
        self.units = units
        self.max_active_jobs = max_active_jobs(tier)
        self.shaping = shaping
        self._clock: Clock = clock or time.monotonic
        self._sleep: Sleep = sleep or asyncio.sleep
        now = self._clock()
        self.buckets = {}
        for name, rate in self.rates.items():
            capacity = max(1.0, rate * burst)
            self.buckets[name] = Bucket(rate=rate, capacity=capacity, tokens=capacity, updated=now)

    def __str__(self) -> str:
        return f"{self.tier} with {self.units} unit{'s' if self.units != 1 else ''}"

    async def admit(self, throttle: str, cost: float = 1.0) -> None:
        """Let one request through `throttle`, after its wait in the shaping queue.

        Raises:
            Throttled: the queue is full; the request must be refused (429).
        """
        bucket = self.buckets[throttle]
        try:
            wait = bucket.take(cost, self._clock(), self.shaping)
        except errors.Throttled as refused:
            raise errors.Throttled(
                f"The IoT hub's {throttle} throttle ({_rate(self.rates[throttle])} on {self}) is "
                "exceeded; back off and retry.",
                retry_after=refused.retry_after,
            ) from None
        if wait > 0:
            await self._sleep(wait)

    async def pace(self, throttle: str, cost: float = 1.0) -> None:
        """Wait for `cost` tokens however long it takes (the hub's own work, e.g. jobs)."""
        bucket = self.buckets[throttle]
        wait = bucket.take(cost, self._clock(), math.inf)
        if wait > 0:
            await self._sleep(wait)

    def view(self) -> dict[str, Any]:
        """Use against each quota, as `GET /quotas` shows it."""
        now = self._clock()
        throttles = {}
        for throttle in THROTTLES:
            bucket = self.buckets[throttle.name]
            throttles[throttle.name] = {
                "covers": throttle.covers,
                "unit": throttle.unit,
                "perSecond": round(bucket.rate, 4),
                "perMinute": round(bucket.rate * MINUTE, 2),
                "burst": round(bucket.capacity, 2),
                "available": round(bucket.available(now), 2),
                "admitted": bucket.admitted,
                "shaped": bucket.shaped,
                "throttled": bucket.refused,
            }
        return {
            "tier": self.tier,
            "units": self.units,
            "shapingSeconds": self.shaping,
            "maxConcurrentJobs": self.max_active_jobs,
            "throttles": throttles,
        }


def _rate(per_second: float) -> str:
    if per_second >= 1:
        return f"{per_second:g}/sec"
    return f"{per_second * MINUTE:g}/min"
