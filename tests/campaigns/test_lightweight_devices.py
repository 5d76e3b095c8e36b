"""Lightweight simulated devices follow the twin contract well enough for a campaign: 50 of them,
raw MQTT over TLS in one event loop, converge a firmware campaign and a configuration campaign
run by the real campaign engine over the real service SDK against the real hub."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local_hub import LocalHub
from patterns.campaigns import Campaign, CampaignSpec, ConfigurationChange, FirmwareUpdate, Rollout
from twin_manager import TwinManager
from twinfleet import light_devices

DEVICES = 50


@pytest.fixture
def light_fleet(
    hub: LocalHub, fleet: TwinManager
) -> Iterator[Callable[[list[str]], light_devices.LightFleet]]:
    """Run lightweight devices for the given ids on a loop of their own, until the test ends."""
    running: list[tuple[asyncio.AbstractEventLoop, asyncio.Task[None], threading.Thread]] = []

    def start(ids: list[str]) -> light_devices.LightFleet:
        strings = [fleet.devices.connection_string(device_id) for device_id in ids]
        light = light_devices.LightFleet(strings, hub.ca_certificate_path)
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        task = loop.create_task(light.run(on_ready=ready.set))

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
            finally:
                loop.close()

        thread = threading.Thread(target=run, name="light-fleet")
        thread.start()
        running.append((loop, task, thread))
        assert ready.wait(60), "the lightweight devices did not all connect"
        return light

    yield start
    for loop, task, thread in running:
        loop.call_soon_threadsafe(task.cancel)
        thread.join(30)


def _until_final(campaign: Campaign, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        status = campaign.tick()
        if status.status in ("completed", "aborted", "cancelled"):
            return status
        assert time.monotonic() < deadline, f"campaign still {status.status}: {status.counts}"
        time.sleep(0.2)


def test_a_firmware_then_a_configuration_campaign_converge_on_50_lightweight_devices(
    hub: LocalHub, fleet: TwinManager, devices: Any, light_fleet: Any
) -> None:
    ids = devices(DEVICES, prefix="light")
    light = light_fleet(ids)
    assert fleet.queries.count("properties.reported.firmware.currentFwVersion = '1.0.0'") == DEVICES
    image = hub.upload_artifact("fw-2.bin", b"image two" * 100)
    spec = CampaignSpec(
        id="light_fw",
        pattern=FirmwareUpdate(
            version="2.0.0", package_uri=image["url"], check_value=image["sha256"]
        ),
        target="tags.kind = 'sensor'",
        rollout=Rollout(per_minute=1e6),
    )
    status = _until_final(Campaign.create(fleet, spec))
    assert status.status == "completed"
    assert status.counts.get("succeeded") == DEVICES, status.counts
    done = fleet.queries.run(
        "SELECT deviceId, properties.reported.firmware AS fw FROM devices "
        "WHERE properties.reported.firmware.currentFwVersion = '2.0.0'",
        page_size=1000,
    )
    assert sorted(row["deviceId"] for row in done) == ids
    for row in done:
        assert row["fw"]["fwUpdateStatus"] == "current"
        assert row["fw"]["pendingFwVersion"] == ""
        assert row["fw"]["lastFwUpdateEndTime"] >= row["fw"]["lastFwUpdateStartTime"]
    # The initial report, then downloading, verifying, applying, rebooting and current.
    assert all(device.reports == 6 for device in light.devices)

    spec = CampaignSpec(
        id="light_config",
        pattern=ConfigurationChange(version=7, settings={"interval": 30}),
        target="tags.kind = 'sensor'",
        rollout=Rollout(per_minute=1e6),
    )
    status = _until_final(Campaign.create(fleet, spec))
    assert status.status == "completed"
    assert status.counts.get("succeeded") == DEVICES, status.counts
    applied = "properties.reported.configuration.status = 'applied' AND " \
              "properties.reported.configuration.version = 7"  # fmt: skip
    assert fleet.queries.count(applied) == DEVICES
