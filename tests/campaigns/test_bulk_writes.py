"""A controller writes its tags a hundred devices to a bulk registry operation while its budget
knows no identity-registry rate, one etag-guarded PATCH a device once it does, and a device whose
twin changed under a bulk write is read again, never written blind."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local_hub import LocalHub
from patterns.campaigns import Campaign, CampaignSpec, ConfigurationChange, Rollout, budgets
from patterns.campaigns.progress import TAG
from twin_manager import TwinManager

COUNT = 150


@pytest.fixture
def opened() -> Iterator[list[TwinManager]]:
    """Managers a test made, closed after it (their HTTPS sessions with them)."""
    made: list[TwinManager] = []
    yield made
    for fleet in made:
        fleet.close()


def _fleet(hub: LocalHub, opened: list[TwinManager]) -> TwinManager:
    fleet = TwinManager.from_local_hub(hub)
    opened.append(fleet)
    fleet.devices.bulk([{"id": f"b-{i:03d}", "importMode": "create", "tags": {"kind": "meter"}}
                        for i in range(100)])  # fmt: skip
    fleet.devices.bulk([{"id": f"b-{i:03d}", "importMode": "create", "tags": {"kind": "meter"}}
                        for i in range(100, COUNT)])  # fmt: skip
    return fleet


def _spec(campaign_id: str) -> CampaignSpec:
    return CampaignSpec(
        id=campaign_id, pattern=ConfigurationChange(version=3, settings={"interval": 30}),
        target="tags.kind = 'meter'", rollout=Rollout(per_minute=1e6),
    )  # fmt: skip


def _admit_all(campaign: Campaign, clock: Any) -> None:
    """Tick until every device is admitted (the rate limiter lets one through on the first)."""
    for _ in range(5):
        if campaign.tick().counts.get("admitted") == COUNT:
            return
        clock.now += 1
    raise AssertionError("the devices were not all admitted")


def test_unbudgeted_ticks_write_a_hundred_devices_a_request_claim_and_desired_together(
    make_hub: Callable[..., LocalHub], clock: Any, opened: list[TwinManager]
) -> None:
    hub = make_hub(tier="S3", units=10)  # meters every request, throttles none here
    fleet = _fleet(hub, opened)
    before = fleet.usage.snapshot()
    campaign = Campaign.create(fleet, _spec("bulk"), clock=clock)
    _admit_all(campaign, clock)  # each claim carries the device's desired section
    spent = fleet.usage.snapshot().since(before)
    # 150 queued tags and 150 claims in bulk requests (the first tick's one claim alone is a
    # PATCH), metered one unit a device, as the hub meters them.
    assert spent.get("identityRegistryOperations") == 2 * COUNT - 1
    assert spent.get("twinUpdates") == 1
    assert spent.get("twinReads") == 0
    requests = hub.quotas["throttles"]["identityRegistryOperations"]["admitted"]
    assert requests == 2 + 2 + 2  # the fleet's two creates, two to queue, two to claim
    twin = fleet.twins.get("b-149")
    assert twin.desired["configuration"]["version"] == 3
    assert twin.tags[TAG]["bulk"]["state"] == "admitted"
    assert twin.desired["configuration"]["campaignId"] == "bulk:1"  # the attempt's tag


def test_a_budget_that_knows_the_tier_writes_one_patch_a_device(
    make_hub: Callable[..., LocalHub], clock: Any, opened: list[TwinManager]
) -> None:
    hub = make_hub(tier="S3", units=10)
    fleet = _fleet(hub, opened)
    before = fleet.usage.snapshot()
    campaign = Campaign.create(fleet, _spec("paced"), clock=clock)
    campaign.budget = budgets.Budget.for_tier("S3", 10)
    _admit_all(campaign, clock)
    spent = fleet.usage.snapshot().since(before)
    assert spent.get("identityRegistryOperations") == 0
    assert spent.get("twinUpdates") == 2 * COUNT  # queued, then claimed with desired: one each
    assert fleet.twins.get("b-000").desired["configuration"]["version"] == 3


def test_a_device_that_changed_under_a_bulk_write_is_read_again(
    make_hub: Callable[..., LocalHub], clock: Any, opened: list[TwinManager]
) -> None:
    hub = make_hub()
    fleet = _fleet(hub, opened)
    campaign = Campaign.create(fleet, _spec("race"), clock=clock)
    real = fleet.queries.run
    raced = []

    def racing(text: str, **options: Any) -> Any:  # another writer moves b-007 after the read
        rows = list(real(text, **options))
        if not raced:
            raced.append(fleet.twins.update_tags("b-007", {"site": "moved"}))
        return iter(rows)

    fleet.queries.run = racing  # type: ignore[method-assign]
    _admit_all(campaign, clock)  # every device queued once and admitted, b-007 too
    twin = fleet.twins.get("b-007")
    assert twin.tags["site"] == "moved"  # the other writer's change was kept
    assert twin.tags[TAG]["race"]["state"] == "admitted"
