"""What a controller tick asks of the hub does not grow with the fleet or the rollout groups.

Queries and record operations are counted where every request leaves (`TwinManager.usage`, filed
by the SDK seam per IoT Hub throttle) and checked against the hub's own meter (`GET /quotas` of a
hub with a tier), never timed. No agents: the campaigns apply a back-end-only pattern (through the
public pattern API) that is done once the hub holds its desired section for the attempt, except
on every third device, which never finishes: those time out on the injected clock, are retried
after a backoff and finally fail, so ticks see queued, admitted, retried, succeeded and failed
devices at once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest

import queries
from local_hub import LocalHub
from patterns import api
from patterns.campaigns import Campaign, CampaignSpec, Group, Retries, Rollout
from twin_manager import TwinManager, UsageSnapshot


class Label(api.Params):
    kind: Literal["testLabel"] = "testLabel"
    value: str


class LabelPattern:
    """Set desired `label`; succeeded once the hub holds it for this attempt (the controller's
    read of the twin shows it), but never on every third device."""

    kind = "testLabel"
    params = Label
    description = "A back-end-only label (a test pattern)."

    def apply(self, params: Label, device: api.Device) -> api.Verdict:
        label = {"value": params.value, "attempt": device.attempt.tag}
        device.fleet.twins.update_desired(device.device_id, {"label": label})
        return api.Verdict.in_progress()

    def outcome(self, params: Label, device: api.Device) -> api.Verdict:
        held = (device.desired.get("label") or {}).get("attempt") == device.attempt.tag
        if held and int(device.device_id[-3:]) % 3:
            return api.Verdict.succeeded()
        return api.Verdict.in_progress()

    def rollback(self, params: Label) -> None:
        return None


def _ids(count: int) -> list[str]:
    return [f"d-{i:03d}" for i in range(count)]


def _spec(campaign_id: str, count: int, groups: int) -> CampaignSpec:
    ids = _ids(count)
    waves = tuple(  # each wave takes every other device of its share; the rest go last
        Group(
            name=f"wave-{n}",
            success_threshold=0.5,
            condition=f"deviceId IN [{', '.join(map(queries.quote, ids[n :: groups * 2]))}]",
        )
        for n in range(groups)
    )
    return CampaignSpec(
        id=campaign_id,
        pattern=Label(value="blue"),
        target="tags.kind = 'sensor'",
        groups=waves,
        rollout=Rollout(per_minute=30),
        timeout_seconds=30,
        retries=Retries(max_attempts=2, backoff_seconds=10),
    )


def _ticks(fleet: TwinManager, spec: CampaignSpec, count: int, clock: Any) -> list[UsageSnapshot]:
    """Tick a new campaign until it completes, 20 s apart on the clock; what each tick sent."""
    campaign = Campaign.create(fleet, spec, clock=clock)
    spent = []
    for _ in range(200):
        before = fleet.usage.snapshot()
        status = campaign.tick()
        spent.append(fleet.usage.snapshot().since(before))
        if status.status == "completed":
            assert status.counts == {"succeeded": count - len(_ids(count)[::3]),
                                     "timedout": len(_ids(count)[::3])}  # fmt: skip
            return spent
        clock.now += 20
    raise AssertionError(f"the campaign did not complete: {status}")


def _fleet(hub: LocalHub, count: int) -> TwinManager:
    fleet = TwinManager.from_local_hub(hub)
    for device_id in _ids(count):
        fleet.devices.create(device_id)
        fleet.twins.update_tags(device_id, {"kind": "sensor"})
    return fleet


@pytest.fixture
def label_pattern() -> Iterator[None]:
    """The test pattern in the process's registry for this test only (the CLI's commands are
    made from the registry: a pattern left behind would be a command in later tests)."""
    api.registry().register(LabelPattern())
    yield
    api.registry(refresh=True)


@pytest.mark.usefixtures("label_pattern")
def test_queries_per_tick_do_not_grow_with_the_fleet_or_the_groups(
    make_hub: Callable[..., LocalHub], clock: Any
) -> None:
    small = _fleet(make_hub(), 6)
    metered_hub = make_hub(tier="S3", units=10)  # meters every request, throttles none here
    large = _fleet(metered_hub, 60)
    runs = {
        "6 devices": _ticks(small, _spec("small", 6, 1), 6, clock),
        "60 devices": _ticks(large, _spec("large", 60, 1), 60, clock),
        "60 devices in 5 groups": _ticks(large, _spec("groups", 60, 4), 60, clock),
    }
    assert len(runs["60 devices"]) > 2 * len(runs["6 devices"])  # far more ticks to finish
    most = {}
    for name, ticks in runs.items():
        queries = [tick.get("queries") for tick in ticks]
        records = [tick.get("configurations") for tick in ticks]
        # between the first tick (which also enqueues) and the last (which cancels what is
        # left): the tally, the admitted devices, one page of candidates, new failure reasons
        assert max(queries[1:-1]) <= 4, (name, queries)
        assert max(records[1:-1]) == 2, (name, records)  # the record read once, written once
        assert all(not tick.throttled for tick in ticks)
        most[name] = max(queries)
    assert most["6 devices"] == most["60 devices"] == most["60 devices in 5 groups"] <= 5
    # What the manager counted is what the hub metered.
    metered = metered_hub.quotas["throttles"]
    counted = large.usage.snapshot()
    for throttle in ("queries", "configurations", "twinUpdates"):
        assert metered[throttle]["admitted"] == counted.get(throttle), throttle
