"""The rate limit holds after every kind of wait: a pause, a controller outage, canaries in
flight. Time is the injected clock, one controller pass per simulated second; the limit is
asserted as admissions per pass and per window, as an operator watching would count them."""

from __future__ import annotations

import time
from typing import Any

from local_hub import testing
from patterns.campaigns import Campaign, CampaignSpec, ConfigurationChange, Group, Rollout
from patterns.campaigns.limiting import TokenBucket
from twin_manager import TwinManager


def _admitted(fleet: TwinManager, campaign_id: str) -> int:
    return fleet.queries.count(f"IS_DEFINED(tags.twinfleet.{campaign_id}.admittedAt)")


def _passes(campaign: Campaign, clock: Any, fleet: TwinManager, seconds: int) -> list[int]:
    """Tick once per simulated second; how many devices each pass admitted."""
    per_pass = []
    for _ in range(seconds):
        before = _admitted(fleet, campaign.id)
        campaign.tick()
        per_pass.append(_admitted(fleet, campaign.id) - before)
        clock.now += 1
    return per_pass


def _spec(campaign_id: str, **options: Any) -> CampaignSpec:
    return CampaignSpec(id=campaign_id, target="tags.kind = 'sensor'",
                        pattern=ConfigurationChange(version=1, settings={"a": 1}),
                        rollout=Rollout(per_minute=20), **options)  # fmt: skip


def _within_rate(per_pass: list[int]) -> bool:
    """At 20/min, any window of w seconds admits at most one device plus w/3: a token bucket's
    one saved token and the rate, never a crowd."""
    return all(
        sum(per_pass[i : i + w]) <= 1 + w // 3
        for w in range(1, len(per_pass) + 1)
        for i in range(len(per_pass) - w + 1)
    )


def test_a_pause_banks_no_admissions(fleet: TwinManager, devices: Any, clock: Any) -> None:
    devices(12)
    campaign = Campaign.create(fleet, _spec("paused"), clock=clock)
    assert _within_rate(_passes(campaign, clock, fleet, 4))
    Campaign.load(fleet, "paused", clock=clock).pause()  # another process pauses it
    assert sum(_passes(campaign, clock, fleet, 30)) == 0
    Campaign.load(fleet, "paused", clock=clock).resume()
    after = _passes(campaign, clock, fleet, 9)
    assert after == [
        1,
        0,
        0,
        1,
        0,
        0,
        1,
        0,
        0,
    ]  # one at once, as at the start: the 30 s earned nothing


def test_a_controller_outage_banks_no_admissions(
    fleet: TwinManager, devices: Any, clock: Any
) -> None:
    devices(12)
    campaign = Campaign.create(fleet, _spec("outage"), clock=clock)
    assert _within_rate(_passes(campaign, clock, fleet, 4))
    clock.now += 300  # no controller ran for five minutes
    restarted = Campaign.load(fleet, "outage", clock=clock)
    after = _passes(restarted, clock, fleet, 9)
    assert after == [1, 0, 0, 1, 0, 0, 1, 0, 0]  # one at once; the five minutes earned nothing


def test_waiting_for_canaries_banks_no_admissions(
    fleet: TwinManager, devices: Any, agents: Any, clock: Any
) -> None:
    devices(1, prefix="canary", ring="canary")
    devices(8, prefix="rest")
    spec = _spec("canaried", groups=(Group(name="canary", condition="tags.ring = 'canary'"),))
    campaign = Campaign.create(fleet, spec, clock=clock)
    assert _passes(campaign, clock, fleet, 40) == [1] + [0] * 39  # the canary, then it is awaited
    agents(["canary-000"])  # the canary's device comes online and applies the change
    deadline = time.monotonic() + 60
    waiting: list[int] = []
    while campaign.status().counts.get("succeeded", 0) < 1:
        assert time.monotonic() < deadline, campaign.status()
        waiting += _passes(campaign, clock, fleet, 1)
        time.sleep(0.1)
    after = waiting + _passes(campaign, clock, fleet, 9)
    assert 1 in after[-11:-8]  # the next group starts at once...
    assert _within_rate(after)  # ...then at the rate: the 40 s wait banked nothing


def test_a_slow_controller_gets_no_more_than_the_burst(
    fleet: TwinManager, devices: Any, clock: Any
) -> None:
    devices(10)
    spec = _spec("slow").model_copy(update={"rollout": Rollout(per_minute=60, burst=3)})
    campaign = Campaign.create(fleet, spec, clock=clock)
    per_pass = []
    for _ in range(3):
        before = _admitted(fleet, "slow")
        campaign.tick()
        per_pass.append(_admitted(fleet, "slow") - before)
        clock.now += 20  # a controller polling every 20 s: the bucket holds 3, not 20
    assert per_pass == [1, 3, 3]


def test_a_controller_paced_to_tick_slowly_keeps_the_rate(
    fleet: TwinManager, devices: Any, clock: Any
) -> None:
    devices(30)
    spec = _spec("paced").model_copy(update={"rollout": Rollout(per_minute=60, burst=3)})
    campaign = Campaign.create(fleet, spec, clock=clock)
    campaign.interval = 20  # as run_paced sets it on a throttled tier
    per_pass = []
    for _ in range(3):
        before = _admitted(fleet, "paced")
        campaign.tick()
        per_pass.append(_admitted(fleet, "paced") - before)
        clock.now += 20
    assert per_pass == [1, 20, 9]  # 60/min held over 20 s ticks, not cut to the burst


def test_the_token_bucket() -> None:
    bucket = TokenBucket().refill(100.0, per_minute=60, capacity=5)
    assert (bucket.available, bucket.last) == (1, 100.0)
    bucket = bucket.spend(1).refill(103.0, per_minute=60, capacity=5)
    assert bucket.available == 3
    assert bucket.refill(120.0, per_minute=60, capacity=5).available == 5  # capped
    assert bucket.refill(200.0, per_minute=60, capacity=5) == TokenBucket(1.0, 200.0)  # outage
    assert TokenBucket(0.0, 5.0).restart(9.0) == TokenBucket(1.0, 9.0)
    assert bucket.idle(150.0) == TokenBucket(1.0, 150.0)
    assert TokenBucket(0.25, 10.0).idle(20.0) == TokenBucket(0.25, 20.0)  # keeps a fraction
    assert TokenBucket.from_state(bucket.to_state()) == bucket


def test_the_controller_rides_out_a_hub_outage(
    faults: testing.Faults, fleet: TwinManager, devices: Any
) -> None:
    devices(2)
    spec = _spec("outlived").model_copy(update={"rollout": Rollout(per_minute=6000)})
    campaign = Campaign.create(fleet, spec)
    seen: list[Any] = []
    faults.inject(503, 12)  # more than twin_manager's retries: a tick fails outright
    status = campaign.run(poll=0.05, on_tick=seen.append,
                          until=lambda: seen[-1].counts.get("admitted") == 2)  # fmt: skip
    assert status.counts == {"admitted": 2}
