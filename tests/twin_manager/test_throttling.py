"""twin_manager on a hub with IoT Hub's S1 quotas: 429s are waited out (Retry-After honoured),
never turned into failures while the retry budget lasts. The hub's quotas and the manager's
sleeps share one manual clock, so a wait of 3 s takes no time."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import twin_manager
from local_hub import LocalHub, quotas
from twin_manager import RetryPolicy, TwinManager


class ManualClock:
    def __init__(self) -> None:
        self.now = 5000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def hub_sleep(self, seconds: float) -> None:
        raise AssertionError("the shaping queue is off: the hub never makes a request wait")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def s1(make_hub: Callable[..., LocalHub], clock: ManualClock) -> LocalHub:
    return make_hub(limits=quotas.Quotas("S1", 1, clock=clock, sleep=clock.hub_sleep, shaping=0))


def test_queries_past_s1s_quota_are_waited_out(s1: LocalHub, clock: ManualClock) -> None:
    retry = RetryPolicy(sleep=clock.sleep, jitter=lambda: 0.5)
    with TwinManager.from_local_hub(s1, retry=retry) as fleet:
        fleet.devices.create("q-1")
        for _ in range(26):
            assert [t.device_id for t in fleet.queries.twins("deviceId != 'none'")] == ["q-1"]
    # 20 banked, then one every 3 s: each of the 6 more waits out exactly the Retry-After.
    assert clock.slept == [3.0] * 6
    assert s1.quotas["throttles"]["queries"]["throttled"] == 6


def test_registry_operations_past_s1s_quota_are_waited_out(
    s1: LocalHub, clock: ManualClock
) -> None:
    retry = RetryPolicy(sleep=clock.sleep, jitter=lambda: 0.5)
    with TwinManager.from_local_hub(s1, retry=retry) as fleet:
        for n in range(110):
            fleet.devices.create(f"r-{n:03d}")
    # 100 banked, then 100/min: the 10 more take six 1-second waits (Retry-After is whole
    # seconds, at least 1; each second pays back 1.67 operations).
    assert clock.slept == [1.0] * 6


def test_a_throttle_outlasting_the_budget_is_raised(s1: LocalHub, clock: ManualClock) -> None:
    slept: list[float] = []  # time stands still: the quota never refills
    retry = RetryPolicy(sleep=slept.append, jitter=lambda: 0.5, throttle_budget=5)
    with TwinManager.from_local_hub(s1, retry=retry) as fleet:
        for _ in range(20):
            list(fleet.queries.twins("deviceId != 'none'"))
        with pytest.raises(twin_manager.Throttled) as caught:
            list(fleet.queries.twins("deviceId != 'none'"))
    assert caught.value.status == 429
    assert caught.value.retry_after == 3
    assert slept == [3.0]  # a second 3 s wait would pass the 5 s budget
