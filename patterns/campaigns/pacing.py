"""Pacing a campaign controller within an IoT hub's quotas.

On Azure IoT Hub the scarce quota for a campaign controller is queries: an S1 (or F1, or S2) hub
answers 20 queries a minute per unit, S3 1,000; past that it answers 429. A controller tick reads
progress with GROUP BY queries and pages of twins: about `QUERIES_PER_TICK` queries plus one per
rollout group (measured on the controller as it is). Twin writes (3 per admitted device: claim,
desired, result) are not the limit: S1 allows 50 a second.

`Pacing` turns the hub's tier into the time between ticks, so that the controller's queries
stay within its `share` of the query quota (the rest is left to operators, dashboards and other
controllers): `poll = 60 * queries_per_tick / (queries_per_minute * share)`. When the hub still
answers 429 (someone else uses the quota too), `throttled()` doubles the interval, and every
tick that met no throttle lets it come back down towards the tier's interval. With no tier
known, pacing starts from the fastest interval and learns from 429s alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from patterns.campaigns.campaign import Campaign, CampaignStatus
from twin_manager import Throttled

__all__ = ["QUERIES_PER_MINUTE", "QUERIES_PER_TICK", "Pacing", "run_paced"]

log = logging.getLogger(__name__)

QUERIES_PER_TICK = 9  # a tick's queries with one rollout group, measured; plus one per group
QUERIES_PER_MINUTE = {"F1": 20.0, "S1": 20.0, "S2": 20.0, "S3": 1000.0}  # per unit, documented
_MAX_UNITS = {"F1": 1, "S1": 200, "S2": 200, "S3": 10}


@dataclass
class Pacing:
    """Seconds between controller ticks, from the hub's query quota (and observed 429s).

    Attributes:
        queries_per_minute: the hub's query quota (None: unknown, learn from 429s).
        queries_per_tick: the controller's queries in one tick.
        share: the fraction of the query quota the controller may use.
        fastest: the shortest interval between ticks, in seconds.
        slowest: the longest interval `throttled()` backs off to, in seconds.
    """

    queries_per_minute: float | None = None
    queries_per_tick: int = QUERIES_PER_TICK
    share: float = 0.5
    fastest: float = 0.5
    slowest: float = 600.0
    _penalty: float = field(default=1.0, repr=False)

    @classmethod
    def for_tier(cls, tier: str, units: int = 1, *, groups: int = 1, share: float = 0.5) -> Pacing:
        """Pacing for a hub of `tier` with `units`, for a campaign with `groups` rollout groups.

        Raises:
            ValueError: an unknown tier or unit count.
        """
        tier = tier.upper()
        if tier not in QUERIES_PER_MINUTE:
            raise ValueError(f"Unknown IoT Hub tier {tier!r}; use F1, S1, S2 or S3.")
        if not 1 <= units <= _MAX_UNITS[tier]:
            raise ValueError(f"Tier {tier} has 1 to {_MAX_UNITS[tier]} units, not {units}.")
        if not 0 < share <= 1:
            raise ValueError("share must be a fraction of the quota, above 0 and at most 1.")
        return cls(
            queries_per_minute=QUERIES_PER_MINUTE[tier] * units,
            queries_per_tick=QUERIES_PER_TICK + max(0, groups - 1),
            share=share,
        )

    @property
    def base(self) -> float:
        """The interval the quota alone asks for."""
        if self.queries_per_minute is None:
            return self.fastest
        budget = self.queries_per_minute * self.share
        return max(self.fastest, 60.0 * self.queries_per_tick / budget)

    @property
    def poll(self) -> float:
        """Seconds to wait before the next tick."""
        return min(self.slowest, self.base * self._penalty)

    def throttled(self) -> None:
        """The hub answered 429 during the last tick: tick half as often."""
        self._penalty = min(self._penalty * 2.0, self.slowest / self.base)

    def clear(self) -> None:
        """A tick met no throttle: come back a step towards the quota's own interval."""
        self._penalty = max(1.0, self._penalty / 1.5)


def run_paced(
    campaign: Campaign,
    pacing: Pacing,
    *,
    on_tick: Callable[[CampaignStatus], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CampaignStatus:
    """Tick `campaign` until it is settled (final, nothing in flight), `pacing.poll` seconds
    apart; returns the last status.

    A tick that ends in `Throttled` (the hub kept answering 429 through twin_manager's retry
    budget) is not a failure of the campaign: the controller backs off and ticks again later.
    """
    while True:
        campaign.interval = pacing.poll  # the rate limiter holds a tick's worth of admissions
        try:
            status = campaign.tick()
        except Throttled:
            log.info("campaign %s: the hub is throttling; ticking less often", campaign.id)
            pacing.throttled()
            sleep(pacing.poll)
            continue
        pacing.clear()
        if on_tick is not None:
            on_tick(status)
        if status.settled:
            return status
        sleep(pacing.poll)
