"""The provisioning backoff's schedule: exponential, jittered to between half and all of each
step, capped, and restarted after a connected session. Pure arithmetic on a seeded generator."""

from __future__ import annotations

import random

import pytest

from device_agent import Backoff


def test_the_backoff_doubles_is_jittered_within_half_to_all_and_stops_at_its_cap() -> None:
    rng = random.Random(13)
    backoff = Backoff(initial=2, cap=300, rng=rng.random)
    delays = [backoff.next() for _ in range(14)]
    ceilings = [min(300, 2 * 2**n) for n in range(14)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays
    assert max(delays) <= 300
    assert len(set(delays)) == len(delays)  # jittered: a fleet does not retry in step
    assert sum(delays[:4]) >= 15  # 1+2+4+8 at the least: never a hot loop
    backoff.reset()
    assert 1 <= backoff.next() <= 2


def test_the_backoff_refuses_bounds_that_cannot_work() -> None:
    with pytest.raises(ValueError, match="0 < initial <= cap"):
        Backoff(initial=10, cap=5)
    with pytest.raises(ValueError, match="0 < initial <= cap"):
        Backoff(initial=0)
