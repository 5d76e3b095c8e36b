"""Steps chained per device, re-runs, maintenance windows, connect triggers and configuration
propagation from one device."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from patterns.campaigns import (
    Campaign,
    CampaignSpec,
    ConfigurationChange,
    Reboot,
    Rollout,
    specs,
)
from patterns.campaigns.windows import CronError, in_window
from twin_manager import TwinManager


def _online(fleet: TwinManager, count: int) -> None:
    deadline = time.monotonic() + 60
    while fleet.queries.count("connectionState = 'Connected'") < count:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def _drive(campaign: Campaign, until: str = "completed", timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while (status := campaign.tick()).status != until:
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    return status


def test_steps_run_in_order_and_a_failed_step_stops_the_device(
    fleet: TwinManager, devices: Any, agents: Any
) -> None:
    good = devices(2, prefix="good")
    bad = devices(1, prefix="bad")

    def refuse_stage_two(settings: dict[str, Any]) -> None:
        if settings.get("stage") == 2:
            raise ValueError("stage 2 refused")

    agents(good)
    agents(bad, configure=refuse_stage_two)
    _online(fleet, 3)
    spec = CampaignSpec(
        id="chain", target="tags.kind = 'sensor'", rollout=Rollout(per_minute=600),
        pattern=ConfigurationChange(version=1, settings={"stage": 1}),
        steps=(ConfigurationChange(version=2, settings={"stage": 2}), Reboot()),
    )  # fmt: skip
    status = _drive(Campaign.create(fleet, spec))
    assert status.counts == {"succeeded": 2, "failed": 1}
    assert list(status.reasons) == ["step 2: configuration error: stage 2 refused"]
    for device_id in good:
        twin = fleet.twins.get(device_id)
        assert twin.reported["configuration"]["version"] == 2
        assert twin.reported.get("reboot", {}).get("lastReboot")
        assert twin.tags["twinfleet"]["chain"]["step"] == 2
    stopped = fleet.twins.get("bad-000")
    assert stopped.tags["twinfleet"]["chain"]["step"] == 1
    assert "reboot" not in stopped.reported  # the failed step stopped the device before step 3


def test_rerun_resumes_at_the_failed_step_and_skips_done_devices(
    fleet: TwinManager, devices: Any, agents: Any
) -> None:
    ids = devices(3)
    refusing = {"on": True}

    def configure(settings: dict[str, Any]) -> None:
        if settings.get("stage") == 2 and refusing["on"]:
            raise ValueError("not yet")

    agents(ids, configure=configure)
    _online(fleet, 3)
    spec = CampaignSpec(
        id="resume", target="tags.kind = 'sensor'", rollout=Rollout(per_minute=600),
        pattern=ConfigurationChange(version=1, settings={"stage": 1}),
        steps=(ConfigurationChange(version=2, settings={"stage": 2}),),
    )  # fmt: skip
    campaign = Campaign.create(fleet, spec)
    status = _drive(campaign)
    assert status.counts == {"failed": 3}
    assert all(r.startswith("step 2:") for r in status.reasons)
    refusing["on"] = False
    for device_id in ids:  # clear the failed desired state so the re-run's write is a change
        fleet.twins.update_desired(device_id, {"configuration": None})
    campaign.rerun()
    status = _drive(campaign)
    assert status.counts == {"succeeded": 3}
    assert {fleet.twins.get(d).tags["twinfleet"]["resume"]["step"] for d in ids} == {1}


def test_a_maintenance_window_gates_admission(fleet: TwinManager, devices: Any, clock: Any) -> None:
    devices(2)
    clock.now = datetime(2026, 11, 24, 1, 30, tzinfo=UTC).timestamp()
    spec = CampaignSpec(
        id="nightly", target="tags.kind = 'sensor'", rollout=Rollout(per_minute=600),
        pattern=ConfigurationChange(version=1, settings={}),
        window=specs.Window(cron="0 2 * * *", duration_minutes=60),
    )  # fmt: skip
    campaign = Campaign.create(fleet, spec, clock=clock)
    assert campaign.tick().counts == {"queued": 2}
    clock.now = datetime(2026, 11, 24, 2, 10, tzinfo=UTC).timestamp()
    assert campaign.tick().counts == {"admitted": 1, "queued": 1}  # the shut window banked none
    clock.now += 1
    assert campaign.tick().counts == {"admitted": 2}
    assert in_window("0 2 * * *", 60, clock.now)
    with pytest.raises(ValidationError, match="hour field"):
        specs.Window(cron="0 24 * * *", duration_minutes=5)
    with pytest.raises(CronError):
        in_window("* * *", 5, 0)


def test_the_connect_trigger_waits_for_mostly_offline_devices(
    fleet: TwinManager, devices: Any, agents: Any
) -> None:
    online = devices(1, prefix="on")
    devices(1, prefix="off")
    agents(online)
    _online(fleet, 1)
    spec = CampaignSpec(
        id="onconnect", target="tags.kind = 'sensor'", rollout=Rollout(per_minute=600),
        pattern=ConfigurationChange(version=1, settings={}), trigger="on_connect",
    )  # fmt: skip
    campaign = Campaign.create(fleet, spec)
    campaign.tick()
    assert fleet.twins.get("off-000").tags["twinfleet"]["onconnect"]["state"] == "queued"
    assert fleet.twins.get("on-000").tags["twinfleet"]["onconnect"]["state"] in (
        "admitted",
        "succeeded",
    )
    agents(["off-000"])
    _online(fleet, 2)
    status = _drive(campaign)
    assert status.counts == {"succeeded": 2}


def test_configuration_taken_from_one_device(fleet: TwinManager, devices: Any, agents: Any) -> None:
    ids = devices(3)
    agents(ids)
    _online(fleet, 3)
    fleet.twins.update_desired(
        "d-000", {"configuration": {"version": 7, "interval": 15, "mode": "eco"}}
    )
    deadline = time.monotonic() + 30
    while fleet.twins.get("d-000").reported.get("configuration", {}).get("status") != "applied":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    model = fleet.twins.get("d-000").reported
    pattern = ConfigurationChange.like_device(model, version=8)
    assert pattern.settings == {"interval": 15, "mode": "eco"}
    spec = CampaignSpec(id="copy", target="tags.kind = 'sensor'", pattern=pattern,
                        rollout=Rollout(per_minute=600))  # fmt: skip
    assert _drive(Campaign.create(fleet, spec)).counts == {"succeeded": 3}
    assert fleet.twins.get("d-002").reported["configuration"]["settings"] == {
        "interval": 15,
        "mode": "eco",
    }
    with pytest.raises(ValueError, match="no applied configuration"):
        ConfigurationChange.like_device({}, version=9)
