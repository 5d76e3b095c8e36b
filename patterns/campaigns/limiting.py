"""The admission rate: a token bucket that holds little and banks nothing while a campaign waits.

A rate limit exists to spread devices out, so the bucket must never let a crowd through at once:

- it refills at the campaign's rate (devices per minute) and holds at most `capacity` tokens, a
  few seconds' worth of the rate (`Rollout.burst`), so a controller that polls every few seconds
  keeps the rate and none admits more than `capacity` in one pass;
- while the campaign waits (the maintenance window shut, canaries still in flight, a group with
  nothing left to admit now), time earns nothing: `idle` keeps at most one token;
- a pause, and a gap between two passes longer than `outage_after` (no controller was running:
  stopped, crashed, or the hub unreachable), earn nothing either: the campaign `restart`s as it
  started, with one token: one device at once, then the rate.

The bucket is stored in the campaign record (`tokens`, `lastTick`), so a controller started in
another process carries on with the same bucket.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

__all__ = ["DEFAULT_OUTAGE_AFTER", "TokenBucket"]

DEFAULT_OUTAGE_AFTER = 30.0


@dataclass(frozen=True)
class TokenBucket:
    """Admission tokens, and when they were last counted (None: never)."""

    tokens: float = 1.0
    last: float | None = None

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TokenBucket:
        last = state.get("lastTick")
        return cls(float(state.get("tokens", 1.0)), None if last is None else float(last))

    def to_state(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "lastTick": self.last}

    def refill(
        self, now: float, per_minute: float, capacity: float,
        outage_after: float = DEFAULT_OUTAGE_AFTER,
    ) -> TokenBucket:  # fmt: skip
        """The bucket at `now`, refilled at `per_minute` up to `capacity` (at least one)."""
        capacity = max(1.0, capacity)
        if self.last is None:
            return TokenBucket(min(self.tokens, capacity), now)
        elapsed = max(0.0, now - self.last)
        if elapsed > outage_after:
            return self.restart(now)
        return TokenBucket(min(capacity, self.tokens + per_minute * elapsed / 60), now)

    def spend(self, count: int) -> TokenBucket:
        """The bucket after admitting `count` devices."""
        return replace(self, tokens=self.tokens - count)

    def idle(self, now: float) -> TokenBucket:
        """The bucket after a wait ending at `now`: one token at most, none earned meanwhile."""
        return TokenBucket(min(self.tokens, 1.0), now)

    def restart(self, now: float) -> TokenBucket:
        """The bucket after a pause or an outage ending at `now`: one token, as at the start."""
        return TokenBucket(1.0, now)

    @property
    def available(self) -> int:
        """How many devices may be admitted now."""
        return max(0, int(self.tokens + 1e-9))
