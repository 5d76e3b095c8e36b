"""A cancelled or aborted campaign still follows the devices it had admitted to their outcome:
none stays `admitted` forever, a failure is not retried, and no next step starts."""

from __future__ import annotations

import time
from typing import Any

from patterns.campaigns import (
    Campaign,
    CampaignSpec,
    ConfigurationChange,
    Group,
    Retries,
    Rollout,
)
from twin_manager import TwinManager


def _online(fleet: TwinManager, count: int) -> None:
    deadline = time.monotonic() + 60
    while fleet.queries.count("connectionState = 'Connected'") < count:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_cancelled_campaign_follows_its_devices_in_flight(
    fleet: TwinManager, devices: Any, agents: Any, clock: Any
) -> None:
    good = devices(2, prefix="good", ring="canary")
    bad = devices(1, prefix="bad", ring="canary")
    devices(1, prefix="off", ring="canary")  # never comes online
    devices(2, prefix="later")

    def refuse(settings: dict[str, Any]) -> None:
        raise ValueError("refused")

    spec = CampaignSpec(
        id="stopme", target="tags.kind = 'sensor'", timeout_seconds=60,
        pattern=ConfigurationChange(version=1, settings={"stage": 1}),
        steps=(ConfigurationChange(version=2, settings={"stage": 2}),),
        rollout=Rollout(per_minute=600), retries=Retries(max_attempts=3, backoff_seconds=0),
        groups=(Group(name="canary", condition="tags.ring = 'canary'"),),
    )  # fmt: skip
    campaign = Campaign.create(fleet, spec, clock=clock)
    campaign.tick()
    clock.now += 1
    assert campaign.tick().counts == {"admitted": 4, "queued": 2}
    Campaign.load(fleet, "stopme", clock=clock).cancel()  # from another process
    agents(good)  # the devices come online and act on what they were sent before the cancel
    agents(bad, configure=refuse)

    deadline = time.monotonic() + 60
    while (status := campaign.tick()).counts.get("admitted") != 1:
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert not status.settled  # off-000 is still followed...
    clock.now += 61
    status = campaign.tick()  # ...until it times out
    assert status.settled
    assert status.status == "cancelled"
    tags = {
        t.device_id: t.tags["twinfleet"]["stopme"]
        for t in fleet.queries.twins("IS_DEFINED(tags.twinfleet.stopme)")
    }
    states = {device_id: (tag["state"], tag.get("reason")) for device_id, tag in tags.items()}
    assert states == {
        "good-000": ("cancelled", "campaign cancelled after step 1 of 2"),
        "good-001": ("cancelled", "campaign cancelled after step 1 of 2"),
        "bad-000": ("failed", "step 1: configuration error: refused"),  # not retried
        "off-000": ("timedout", "step 1: timed out"),
        "later-000": ("cancelled", "cancelled"),
        "later-001": ("cancelled", "cancelled"),
    }
    assert fleet.twins.get("good-000").desired["configuration"]["version"] == 1  # no step 2
    assert fleet.twins.get("bad-000").tags["twinfleet"]["stopme"]["attempt"] == 1
    assert any("following 4 devices in flight" in line for line in status.log)
