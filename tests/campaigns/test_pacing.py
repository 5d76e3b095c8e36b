"""Campaigns within IoT Hub's quotas: the tick interval from the tier's query quota, backing off
on 429s, and a campaign on an S1 hub that completes without one throttled query. The hub's quotas
and the controller share a manual clock, so a 54-second pause between ticks takes no time."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from device_agent import SimulatedFleet
from local_hub import LocalHub, quotas
from patterns.campaigns import Campaign, CampaignSpec, ConfigurationChange, Group, Rollout
from patterns.campaigns.pacing import Pacing, run_paced
from twin_manager import TwinManager


def test_the_tick_interval_follows_the_query_quota() -> None:
    assert Pacing.for_tier("S1").poll == pytest.approx(54.0)  # 9 queries in half of 20/min
    assert Pacing.for_tier("s1", 3, groups=2, share=1.0).poll == pytest.approx(10.0)
    assert Pacing.for_tier("S3").poll == pytest.approx(1.08)
    assert Pacing.for_tier("S3", 10, share=1.0).poll == 0.5  # never faster than `fastest`
    with pytest.raises(ValueError, match="B2"):
        Pacing.for_tier("B2")
    with pytest.raises(ValueError, match="units"):
        Pacing.for_tier("F1", 2)


def test_429s_slow_the_controller_down_and_quiet_ticks_bring_it_back() -> None:
    pacing = Pacing.for_tier("S1", share=1.0)
    assert pacing.poll == pytest.approx(27.0)
    pacing.throttled()
    pacing.throttled()
    assert pacing.poll == pytest.approx(108.0)
    for _ in range(10):
        pacing.throttled()
    assert pacing.poll == 600.0  # capped at `slowest`
    for _ in range(20):
        pacing.clear()
    assert pacing.poll == pytest.approx(27.0)
    unknown = Pacing()  # no tier: as fast as allowed until the hub says otherwise
    assert unknown.poll == 0.5
    unknown.throttled()
    assert unknown.poll == 1.0


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
            campaign = Campaign.create(fleet, spec, clock=clock)
            pacing = Pacing.for_tier("S1", groups=2)
            final = run_paced(campaign, pacing, sleep=clock.pause)
            assert final.status == "completed"
            assert final.counts == {"succeeded": 4}
            assert {fleet.twins.get(d).reported["configuration"]["status"] for d in ids} == {
                "applied"
            }
    finally:
        simulated.stop()
    used = hub.quotas["throttles"]
    assert used["queries"]["throttled"] == 0
    assert used["queries"]["admitted"] >= 20  # past the minute's burst: pacing did the work
    assert all(pause == pytest.approx(pacing.poll) for pause in clock.paused)
