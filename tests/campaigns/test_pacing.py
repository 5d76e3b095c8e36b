"""Campaigns within IoT Hub's quotas: the tick interval from the tier's quotas, the client-side
budget (the minute's burst, then the rate; 429s halve a rate), and a campaign on an S1 hub that
completes without one throttled query. The hub's quotas and the controller share a manual clock,
so a 9-second pause between ticks takes no time."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from device_agent import SimulatedFleet
from local_hub import LocalHub, quotas
from patterns.campaigns import Campaign, CampaignSpec, ConfigurationChange, Group, Rollout, budgets
from patterns.campaigns.pacing import Pacing, run_paced
from twin_manager import TwinManager, UsageSnapshot


def test_the_tick_interval_follows_the_quotas() -> None:
    # 3 queries and 2 record operations a tick, in half of S1's 20 queries and 20
    # configuration operations a minute
    assert Pacing.for_tier("S1").poll == pytest.approx(18.0)
    assert Pacing.for_tier("s1", 3, share=1.0).poll == pytest.approx(3.0)
    # S3 answers 1,000 queries a minute, but configurations stay at 20: the record sets the pace
    assert Pacing.for_tier("S3", share=1.0).poll == pytest.approx(6.0)
    assert Pacing.for_tier("S3", 10, share=1.0).poll == pytest.approx(0.6)
    assert Pacing.for_tier("S3", 10, share=1.0).budget.rate("twinUpdates") == 2500
    with pytest.raises(ValueError, match="B2"):
        Pacing.for_tier("B2")
    with pytest.raises(ValueError, match="units"):
        Pacing.for_tier("F1", 2)


class ManualTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_budget_lets_the_minute_of_burst_through_then_the_rate() -> None:
    time_ = ManualTime()
    budget = budgets.Budget.for_tier("S1", clock=time_, sleep=time_.sleep)
    sent = 0
    for _ in range(20):  # the minute banked: no wait
        assert budget.wait("queries", 1, UsageSnapshot({"queries": sent})) == 0
        sent += 1
    waited = budget.wait("queries", 1, UsageSnapshot({"queries": sent}))
    assert waited == pytest.approx(3.0)  # then one query every 3 s
    assert budget.delay("twinUpdates", 3000) == 0  # S1 banks 3,000 twin updates


def test_429s_halve_a_rate_and_quiet_settles_bring_it_back() -> None:
    time_ = ManualTime()
    budget = budgets.Budget.for_tier("S1", clock=time_, sleep=time_.sleep)
    budget.settle(UsageSnapshot({"queries": 5}, {"queries": 1}))
    assert budget.rate("queries") == pytest.approx(1 / 6)
    assert budget.delay("queries") == pytest.approx(6.0)  # the bank is spent too
    for _ in range(10):
        time_.now += 30
        budget.settle(UsageSnapshot({"queries": 5}, {"queries": 1}))
    assert budget.rate("queries") == pytest.approx(1 / 3)  # back to the tier's rate, no more
    unknown = budgets.Budget(clock=time_, sleep=time_.sleep)  # no tier: learn from 429s
    assert unknown.rate("twinUpdates") is None
    unknown.settle(UsageSnapshot({"twinUpdates": 0}))
    time_.now += 10
    unknown.settle(UsageSnapshot({"twinUpdates": 400}, {"twinUpdates": 3}))
    assert unknown.rate("twinUpdates") == pytest.approx(20.0)  # half of the 40/s it was sending
    assert unknown.refusals == 3


def test_throttled_ticks_slow_the_controller_down_and_quiet_ticks_bring_it_back() -> None:
    pacing = Pacing.for_tier("S1", share=1.0)
    assert pacing.poll == pytest.approx(9.0)
    pacing.throttled()
    pacing.throttled()
    assert pacing.poll == pytest.approx(36.0)
    for _ in range(20):
        pacing.throttled()
    assert pacing.poll == 600.0  # capped at `slowest`
    for _ in range(30):
        pacing.clear()
    assert pacing.poll == pytest.approx(9.0)
    assert Pacing().poll == 0.5  # no tier: as fast as allowed until the hub says otherwise


class SharedClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.paused: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def hub_sleep(self, seconds: float) -> None:
        raise AssertionError("the shaping queue is off on this hub")

    def pause(self, seconds: float) -> None:
        """The controller's pause between ticks: instant on this clock; a moment of real time
        lets the agents answer."""
        self.paused.append(seconds)
        self.now += seconds
        time.sleep(0.1)


def test_a_paced_campaign_on_s1_never_meets_a_throttle(
    make_hub: Callable[..., LocalHub], tmp_path: Path
) -> None:
    clock = SharedClock()
    hub = make_hub(
        limits=quotas.Quotas("S1", 1, clock=clock, sleep=clock.hub_sleep, shaping=0),
    )
    simulated = SimulatedFleet().start()
    try:
        with TwinManager.from_local_hub(hub) as fleet:
            ids = [f"s1-{i}" for i in range(4)]
            for device_id in ids:
                fleet.devices.create(device_id)
                simulated.add(
                    fleet.devices.connection_string(device_id), tmp_path / device_id,
                    ca_cert=hub.ca_certificate, image_ca_file=hub.ca_certificate_path,
                )  # fmt: skip
            spec = CampaignSpec(
                id="settings_s1",
                pattern=ConfigurationChange(version=1, settings={"interval": 30}),
                target="deviceId IN ['s1-0', 's1-1', 's1-2', 's1-3']",
                groups=(Group(name="first", condition="deviceId = 's1-0'"),),
                rollout=Rollout(per_minute=600),
                timeout_seconds=24 * 3600,
            )
            for _ in range(16):  # what a dashboard read: the budget counts it (same manager)
                fleet.queries.count("IS_DEFINED(tags.kind)")
            campaign = Campaign.create(fleet, spec, clock=clock)
            pacing = Pacing.for_tier("S1", clock=clock, sleep=clock.pause)
            final = run_paced(campaign, pacing)
            assert final.status == "completed"
            assert final.counts == {"succeeded": 4}
            assert {fleet.twins.get(d).reported["configuration"]["status"] for d in ids} == {
                "applied"
            }
    finally:
        simulated.stop()
    used = hub.quotas["throttles"]
    assert used["queries"]["throttled"] == used["configurations"]["throttled"] == 0
    # past the minute's burst: the budget did the pacing, not the hub
    assert used["queries"]["admitted"] > 20
    assert max(clock.paused) >= 3.0  # waits of the tier's rate, not only the least gap
