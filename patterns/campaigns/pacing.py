"""Pacing a campaign controller within an IoT hub's quotas.

On Azure IoT Hub the scarce quotas for a campaign controller are queries and configuration
operations: an S1 (or F1, or S2) hub answers 20 of each a minute per unit, S3 1,000 queries;
past that it answers 429. A tick reads progress with `QUERIES_PER_TICK` queries (the tally, the
devices in flight, the candidates to admit; see `tallies`) and reads and writes the campaign
record once each, whatever the fleet's size or the number of rollout groups. Twin writes are
budgeted inside the tick (see `budgets`, which also works out why jobs would not be cheaper).

`Pacing` keeps a `budgets.Budget` and, before each tick, waits until the budget has room for a
tick's queries and record operations (the most the last few ticks spent, measured from the
manager's `usage`): ticks run back to back while the hub's minute of burst lasts, then as often
as the rate refills it. A tick that still ends in `Throttled` (someone else spends the quota
too) doubles the least gap between ticks, and each tick that met none brings it back down; the
budget itself halves the rate of each throttle the hub refused. With no tier known, nothing is
limited until the hub answers 429, and pacing learns from those alone.

`poll` is the gap between ticks the budget sustains once the burst is spent:
`max(per tick / rate)` over the metered throttles, at least `fastest`.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from patterns.campaigns import budgets
from patterns.campaigns.campaign import Campaign, CampaignStatus
from twin_manager import Throttled, UsageSnapshot

__all__ = ["CONFIGURATIONS_PER_TICK", "QUERIES_PER_TICK", "Pacing", "run_paced"]

log = logging.getLogger(__name__)

QUERIES_PER_TICK = 3  # the tally, the devices in flight, one page of candidates to admit
CONFIGURATIONS_PER_TICK = 2  # read the record, write it once
_PER_TICK = (("queries", QUERIES_PER_TICK), ("configurations", CONFIGURATIONS_PER_TICK))
_REMEMBERED = 5  # ticks whose spending sets the estimate of the next one's


@dataclass
class Pacing:
    """When the next controller tick may run, from the hub's quotas (and observed 429s).

    Attributes:
        budget: the client-side budget per throttle (also used by the tick for twin writes).
        fastest: the least gap between two ticks, in seconds.
        slowest: the longest gap `throttled()` backs off to, in seconds.
    """

    budget: budgets.Budget = field(default_factory=budgets.Budget)
    fastest: float = 0.5
    slowest: float = 600.0
    _penalty: float = field(default=1.0, repr=False)
    _spent: dict[str, collections.deque[int]] = field(default_factory=dict, repr=False)
    _last: float | None = field(default=None, repr=False)

    @classmethod
    def for_tier(
        cls,
        tier: str,
        units: int = 1,
        *,
        share: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Pacing:
        """Pacing for a hub of `tier` with `units`, using `share` of each of its quotas.

        Raises:
            ValueError: an unknown tier, a unit count the tier does not allow, or a share
                outside (0, 1].
        """
        budget = budgets.Budget.for_tier(tier, units, share=share, clock=clock, sleep=sleep)
        return cls(budget)

    def per_tick(self, throttle: str) -> float:
        """What a tick is expected to spend on `throttle`: the most of the last few ticks."""
        default = dict(_PER_TICK).get(throttle, 0)
        spent = self._spent.get(throttle)
        return float(max(spent)) if spent else float(default)

    @property
    def poll(self) -> float:
        """The gap between ticks the budget sustains once its burst is spent, in seconds."""
        gap = self.fastest
        for throttle, _ in _PER_TICK:
            rate = self.budget.rate(throttle)
            if rate:
                gap = max(gap, self.per_tick(throttle) / rate)
        return min(self.slowest, gap * self._penalty)

    def wait(self, usage: UsageSnapshot) -> None:
        """Sleep until the next tick may run: the least gap since the last one, and room in
        the budget for a tick's queries and record operations."""
        budget = self.budget
        if self._last is not None:
            gap = min(self.slowest, self.fastest * self._penalty)
            if (rest := self._last + gap - budget.clock()) > 0:
                budget.sleep(rest)
        for throttle, _ in _PER_TICK:
            budget.wait(throttle, self.per_tick(throttle), usage)

    def ticked(self, spent: UsageSnapshot) -> None:
        """A tick ended having sent `spent`: remember it for the next estimate."""
        self._last = self.budget.clock()
        for throttle, _ in _PER_TICK:
            history = self._spent.setdefault(throttle, collections.deque(maxlen=_REMEMBERED))
            history.append(spent.get(throttle))

    def throttled(self) -> None:
        """The hub kept answering 429 through a tick: tick half as often."""
        self._penalty = min(self._penalty * 2.0, self.slowest / self.fastest)

    def clear(self) -> None:
        """A tick met no throttle: come back a step towards the budget's own pace."""
        self._penalty = max(1.0, self._penalty / 1.5)


def run_paced(
    campaign: Campaign,
    pacing: Pacing,
    *,
    on_tick: Callable[[CampaignStatus], None] | None = None,
) -> CampaignStatus:
    """Tick `campaign` until it is settled (final, nothing in flight), each tick when the
    pacing allows it; returns the last status. The campaign's twin writes draw on the same
    budget (`Campaign.budget`).

    A tick that ends in `Throttled` (the hub kept answering 429 through twin_manager's retry
    budget) is not a failure of the campaign: the controller backs off and ticks again later.
    """
    usage = campaign.fleet.usage
    campaign.budget = pacing.budget
    while True:
        pacing.wait(usage.snapshot())
        campaign.interval = pacing.poll  # the rate limiter holds a tick's worth of admissions
        before = usage.snapshot()
        try:
            status = campaign.tick()
        except Throttled:
            log.info("campaign %s: the hub is throttling; ticking less often", campaign.id)
            pacing.ticked(usage.snapshot().since(before))
            pacing.throttled()
            continue
        pacing.ticked(usage.snapshot().since(before))
        pacing.clear()
        if on_tick is not None:
            on_tick(status)
        if status.settled:
            return status
