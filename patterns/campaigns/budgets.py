"""A campaign controller's budget on an IoT hub: how many requests of each kind it may send, when.

IoT Hub meters the service API in throttles, each a rate per tier and unit that the hub banks
for about a minute and refuses past (429). What a firmware campaign spends, per device and per
controller tick, against an **S1 hub with one unit** (rates as `local_hub.quotas` encodes
Microsoft's table):

- queries, 20 a minute (20 banked): per tick, one GROUP BY for the counts, one page per 1,000
  admitted devices, one page of candidates when admitting;
- configurations, 20 a minute (20 banked): per tick, the record read once and written once;
- twin updates, 50 a second (3,000 banked): per device, its queued tag, its claim with the
  desired section (one PATCH for a pattern that is only that, `api.DesiredPatch`; two for one
  that calls a method), its result tag (and the device's own reported patches);
- jobs device operations, 10 a second (600 banked): none (see below).

So queries and configurations set how often a controller may tick (3 queries and 2 record
operations a tick: one tick every 9 s at S1's rate, the first few minutes' ticks paid by the
bank), and twin updates set how fast devices move: 3 writes a device, 4 with a device that
reports once, so 1,000 devices need 4,000 updates: 3,000 from the bank, then 1,000 at 50/s, 20 s
at least. (Bulk registry operations, 100 devices a request, draw one identity-registry operation
a device, of which S1 allows 100 a minute: a controller whose budget knows that rate does not
use them, see `writes`.)

**Jobs are not cheaper.** A `scheduleUpdateTwin` job costs one jobs operation (100/min on S1)
plus one *jobs device operation* per device, and those run at 10/s on S1 (50/s per unit on S3):
a fifth of the twin-update rate on every tier. A job also writes one patch to every device it
selects, while a device's campaign tag is its own (its attempt number, its admission time), and
it writes without the twin's etag, which is what keeps two controllers from admitting a device
twice. S1 also runs one job at a time, so a user's job would hold the campaign up. At best a job
would add a 10/s lane beside the 50/s one, for the tags of one uniform step, and give up the
etag guard for it; the controller writes its tags with etag-guarded PATCHes instead, within
the budget here.

A `Budget` keeps one client-side bucket per throttle, filled at `share` of the tier's rate and
holding a minute of it, as the hub does. It is debited with what the manager actually sent
(`TwinManager.usage`, filed per throttle by the SDK seam), so every call counts, including those
a pattern makes; `wait` sleeps until a throttle has room. A throttle whose rate is not known
(no tier given) is not limited until the hub refuses a request on it: each 429 the manager meets
(`usage.throttled`) halves that throttle's rate (learning one from what was sent in the last
minute when none was known), and each settle without one lets it grow back towards the tier's.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from twin_manager import UsageSnapshot

__all__ = ["BURST", "TIERS", "Budget", "rates"]

BURST = 60.0  # seconds of its rate a hub banks per throttle ("applied in minute ranges")
TIERS = ("F1", "S1", "S2", "S3")
_MAX_UNITS = {"F1": 1, "S1": 200, "S2": 200, "S3": 10}
_SLOWEST = 1 / 600  # a learned rate never drops below one request in ten minutes
_WINDOW = 60.0  # seconds of sends a learned rate is measured over


def rates(tier: str, units: int = 1) -> dict[str, float]:
    """Requests a second a hub of `tier` with `units` allows on each throttle a controller uses.

    Raises:
        ValueError: an unknown tier, or a unit count the tier does not allow.
    """
    tier = tier.upper()
    if tier not in TIERS:
        raise ValueError(f"Unknown IoT Hub tier {tier!r}; use F1, S1, S2 or S3.")
    if not 1 <= units <= _MAX_UNITS[tier]:
        raise ValueError(f"Tier {tier} has 1 to {_MAX_UNITS[tier]} units, not {units}.")
    u = float(units)
    if tier == "S3":
        twin_reads, twin_updates, methods = 500 * u, 250 * u, 24 * 1024 / 4 * u
    elif tier == "S2":
        twin_reads, twin_updates, methods = max(100, 10 * u), max(50, 5 * u), 480 / 4 * u
    else:
        twin_reads, twin_updates, methods = 100.0, 50.0, 160 / 4 * u
    per_minute = 5000 if tier == "S3" else 100
    return {
        "queries": (1000 if tier == "S3" else 20) * u / 60,
        "configurations": 20 * u / 60,
        "twinReads": twin_reads,
        "twinUpdates": twin_updates,
        "directMethods": methods,  # calls of up to 4 KB
        "jobsOperations": per_minute * u / 60,
        "identityRegistryOperations": per_minute * u / 60,
    }


@dataclass
class _Allowance:
    limit: float | None  # the tier's rate times the share; None: not known
    rate: float | None  # the rate now (lowered by 429s); None: not limited
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        if self.rate is not None and now > self.updated:
            self.tokens = min(self.rate * BURST, self.tokens + (now - self.updated) * self.rate)
        self.updated = max(self.updated, now)


class Budget:
    """Client-side buckets, one per throttle (see the module docstring).

    Args:
        limits: requests a second allowed per throttle (e.g. `rates("S1")`); throttles not named
            are not limited until the hub answers 429 on them.
        share: the fraction of each rate this controller may use (the rest is left to operators,
            dashboards and other controllers).
        clock: seconds, monotonic (injectable for tests).
        sleep: how to wait (injectable for tests).
    """

    def __init__(
        self,
        limits: Mapping[str, float] | None = None,
        *,
        share: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be a fraction of the quota, above 0 and at most 1.")
        self.share = share
        self.clock = clock
        self.sleep = sleep
        now = clock()
        self._allowances = {
            name: _Allowance(rate * share, rate * share, rate * share * BURST, now)
            for name, rate in (limits or {}).items()
        }
        self._seen = UsageSnapshot()
        self._history: collections.deque[tuple[float, UsageSnapshot]] = collections.deque()
        self.refusals = 0  # 429s met since the budget was made
        self._lock = threading.Lock()  # a tick's workers spend side by side

    @classmethod
    def for_tier(cls, tier: str, units: int = 1, **options: object) -> Budget:
        """A budget for a hub of `tier` with `units` (options as the constructor's)."""
        return cls(rates(tier, units), **options)  # type: ignore[arg-type]

    def rate(self, throttle: str) -> float | None:
        """The requests a second this budget allows on `throttle` now (None: not limited)."""
        allowance = self._allowances.get(throttle)
        return None if allowance is None else allowance.rate

    def settle(self, usage: UsageSnapshot) -> None:
        """Debit what was sent since the last settle; learn from the 429s met meanwhile."""
        with self._lock:
            self._settle(usage)

    def _settle(self, usage: UsageSnapshot) -> None:
        now = self.clock()
        spent = usage.since(self._seen)
        self._seen = usage
        self._history.append((now, usage))
        while len(self._history) > 1 and self._history[0][0] < now - _WINDOW:
            self._history.popleft()
        for throttle, count in spent.sent.items():
            allowance = self._allowances.get(throttle)
            if allowance is not None:
                allowance.refill(now)
                if allowance.rate is not None:
                    allowance.tokens -= count
        for throttle, refused in spent.throttled.items():
            self.refusals += refused
            self._slow_down(throttle, now, usage)
        for throttle in self._allowances.keys() - spent.throttled.keys():
            self._recover(throttle, now)

    def _slow_down(self, throttle: str, now: float, usage: UsageSnapshot) -> None:
        allowance = self._allowances.get(throttle)
        if allowance is None or allowance.rate is None:
            since, then = self._history[0]
            sent = usage.get(throttle) - then.get(throttle)
            observed = sent / max(1.0, now - since)
            allowance = self._allowances[throttle] = _Allowance(None, observed, 0.0, now)
        assert allowance.rate is not None
        allowance.rate = max(_SLOWEST, allowance.rate / 2)
        allowance.tokens = min(allowance.tokens, 0.0)
        allowance.updated = now

    def _recover(self, throttle: str, now: float) -> None:
        allowance = self._allowances.get(throttle)
        if allowance is None or allowance.rate is None:
            return
        grown = allowance.rate * (1 + (now - allowance.updated) / _WINDOW)
        allowance.refill(now)
        allowance.rate = grown if allowance.limit is None else min(allowance.limit, grown)

    def delay(self, throttle: str, need: float = 1.0) -> float:
        """Seconds until `throttle` has room for `need` requests (0: now)."""
        with self._lock:
            allowance = self._allowances.get(throttle)
            if allowance is None or allowance.rate is None:
                return 0.0
            allowance.refill(self.clock())
            need = min(need, allowance.rate * BURST)  # never wait for more than it holds
            return max(0.0, (need - allowance.tokens) / allowance.rate)

    def wait(self, throttle: str, need: float, usage: UsageSnapshot) -> float:
        """Settle `usage`, then sleep until `throttle` has room for `need` requests; returns
        the seconds slept."""
        self.settle(usage)
        waited = 0.0
        while (seconds := self.delay(throttle, need)) > 0:
            self.sleep(seconds)
            waited += seconds
        return waited
