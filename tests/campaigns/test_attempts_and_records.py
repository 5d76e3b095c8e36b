"""Every outcome a campaign reads belongs to the attempt it is waiting for, and campaign records
stay out of every view of devices (queries, device lists, registry statistics)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from patterns import api
from patterns.campaigns import (
    Campaign,
    CampaignSpec,
    CampaignState,
    ConfigurationChange,
    DeviceProgress,
    DeviceState,
    Rollout,
    records,
)
from twin_manager import DeviceNotFound, TwinManager


def _online(fleet: TwinManager, count: int) -> None:
    deadline = time.monotonic() + 60
    while fleet.queries.count("connectionState = 'Connected'") < count:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def _drive(campaign: Campaign, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while (status := campaign.tick()).status != "completed":
        assert time.monotonic() < deadline, status
        time.sleep(0.02)  # tick as fast as the hub answers: the race window is right after a claim
    return status


def test_a_rerun_never_reads_the_previous_attempts_outcome(
    fleet: TwinManager, devices: Any, agents: Any
) -> None:
    """Issue 12's race, eight times over: the re-run's claim is followed at once by ticks while
    the devices still report the failed earlier attempt of the same version; those reports carry
    the earlier attempt's tag, so the re-run waits for its own and every device succeeds."""
    ids = devices(3)
    refusing = {"on": True}

    def configure(settings: dict[str, Any]) -> None:
        if refusing["on"]:
            raise ValueError("not yet")

    agents(ids, configure=configure)
    _online(fleet, 3)
    for round_ in range(8):
        refusing["on"] = True
        spec = CampaignSpec(
            id=f"again{round_}", target="tags.kind = 'sensor'", rollout=Rollout(per_minute=6000),
            pattern=ConfigurationChange(version=round_ + 1, settings={"round": round_}),
        )  # fmt: skip
        campaign = Campaign.create(fleet, spec)
        assert _drive(campaign).counts == {"failed": 3}
        refusing["on"] = False
        campaign.rerun()
        assert _drive(campaign).counts == {"succeeded": 3}, f"round {round_}"
        for device_id in ids:
            progress = DeviceProgress.of(fleet.twins.get(device_id).tags, spec.id)
            assert progress is not None
            assert (progress.state, progress.attempt, progress.tries) == (
                DeviceState.SUCCEEDED,
                2,
                1,
            )
            reported = fleet.twins.get(device_id).reported["configuration"]
            assert reported["campaignId"] == f"again{round_}:2"


def test_an_outcome_of_another_attempt_is_in_progress(fleet: TwinManager) -> None:
    pattern = api.registry().get("configuration")
    params = ConfigurationChange(version=3, settings={})
    old = {"configuration": {"version": 3, "status": "error", "error": "x", "campaignId": "c:1"}}
    mine = {"configuration": {"version": 3, "status": "applied", "campaignId": "c:2"}}

    def verdict(reported: dict[str, Any], number: int) -> api.Verdict:
        device = api.Device(fleet, "d", api.Attempt("c", number, "2026-01-01T00:00:00.000Z"),
                            reported, {})  # fmt: skip
        return pattern.outcome(params, device)

    assert verdict(old, 2).outcome == api.Outcome.IN_PROGRESS
    assert verdict(old, 1) == api.Verdict.failed("configuration error: x")
    assert verdict(mine, 2).outcome == api.Outcome.SUCCEEDED
    assert verdict({}, 2).outcome == api.Outcome.IN_PROGRESS


def test_campaign_records_are_not_devices(
    hub: Any, fleet: TwinManager, devices: Any, registry_manager: Any
) -> None:
    devices(4)
    for name in ("first", "Second_one"):
        spec = CampaignSpec(id=name, target="tags.kind = 'sensor'",
                            pattern=ConfigurationChange(version=1, settings={}))  # fmt: skip
        Campaign.create(fleet, spec).tick()
    rows = list(fleet.queries.run("SELECT COUNT() AS n FROM devices"))
    assert rows == [{"n": 4}]
    assert len(fleet.devices.list()) == 4
    assert registry_manager.get_device_registry_statistics().total_device_count == 4
    assert {r.spec.id for r in records.list_records(fleet)} == {"first", "Second_one"}
    assert Campaign.load(fleet, "Second_one").status().counts == {"admitted": 1, "queued": 3}
    with pytest.raises(DeviceNotFound, match="No campaign 'third'"):
        Campaign.load(fleet, "third")


def test_two_writers_of_one_record_both_land(fleet: TwinManager) -> None:
    """The second writer's etag is stale: it reads the record again and re-applies its change,
    so neither the status nor a log line of either writer is lost."""
    spec = CampaignSpec(id="etag", target="tags.kind = 'sensor'",
                        pattern=ConfigurationChange(version=1, settings={}))  # fmt: skip
    Campaign.create(fleet, spec)
    one, two = (
        records.CampaignRecord.load(fleet, "etag"),
        records.CampaignRecord.load(fleet, "etag"),
    )
    stale = two.etag
    one.log(0, "first writer")
    one.update(fleet, lambda record: setattr(record, "tokens", 7.0))
    two.log(0, "second writer")
    two.update(fleet, lambda record: setattr(record, "status", CampaignState.PAUSED))
    assert two.etag != stale
    stored = records.CampaignRecord.load(fleet, "etag")
    assert (stored.status, stored.tokens) == (CampaignState.PAUSED, 7.0)
    assert [line.split(" ", 1)[1] for line in stored.log_lines] == ["first writer", "second writer"]


def test_the_log_is_in_time_order_whatever_the_order_of_its_writers(
    fleet: TwinManager, clock: Any
) -> None:
    """An operator's pause (from another process, its clock a second ahead) lands while a tick
    that took its time earlier is still logging; that writer loses the etag race, merges, and
    re-applies its change: the stored log is in time order, with each line once."""
    spec = CampaignSpec(id="ordered", target="tags.kind = 'sensor'",
                        pattern=ConfigurationChange(version=1, settings={}))  # fmt: skip
    Campaign.create(fleet, spec, clock=clock)
    ticking = records.CampaignRecord.load(fleet, "ordered")
    ticking.log(clock.now + 1, "admitted 3 from group all")
    operator = Campaign.load(fleet, "ordered", clock=lambda: clock.now + 2)
    operator.pause()

    def change(record: records.CampaignRecord) -> None:
        record.tokens = 3.0
        record.log(clock.now + 3, "tokens spent")

    ticking.log(clock.now, "queued 3 devices")  # logged late, with the tick's start time
    ticking.update(fleet, change)  # stale etag: read again, change applied again
    stored = records.CampaignRecord.load(fleet, "ordered")
    assert [line.split(" ", 1)[1] for line in stored.log_lines] == [
        "queued 3 devices",
        "admitted 3 from group all",
        "paused: paused by the operator",
        "tokens spent",
    ]
    stamps = [line.split(" ", 1)[0] for line in stored.log_lines]
    assert stamps == sorted(stamps)
    assert (stored.status, stored.tokens) == (CampaignState.PAUSED, 3.0)


def test_the_log_keeps_the_latest_lines(fleet: TwinManager, clock: Any) -> None:
    spec = CampaignSpec(id="bounded", target="tags.kind = 'sensor'",
                        pattern=ConfigurationChange(version=1, settings={}))  # fmt: skip
    record = Campaign.create(fleet, spec, clock=clock).record
    for i in reversed(range(records.LOG_LIMIT + 5)):  # newest first
        record.log(clock.now + i, f"line {i}")
    record.save(fleet)
    stored = records.CampaignRecord.load(fleet, "bounded")
    assert [line.split(" ", 1)[1] for line in stored.log_lines] == [
        f"line {i}" for i in range(5, records.LOG_LIMIT + 5)
    ]


def test_group_names_are_escaped_in_queries(fleet: TwinManager, devices: Any, clock: Any) -> None:
    from patterns.campaigns import Group

    devices(2, ring="it's")
    spec = CampaignSpec(
        id="quoted", target="tags.kind = 'sensor'", rollout=Rollout(per_minute=600),
        pattern=ConfigurationChange(version=1, settings={}),
        groups=(Group(name="it's \\ canary", condition="tags.ring = 'it\\'s'"),),
    )  # fmt: skip
    campaign = Campaign.create(fleet, spec, clock=clock)
    assert campaign.tick().counts == {"admitted": 1, "queued": 1}  # one token at the start
    clock.now += 60
    assert campaign.tick().counts == {"admitted": 2}
    assert {t.tags["twinfleet"]["quoted"]["group"] for t in fleet.queries.twins()} == {
        "it's \\ canary"
    }
