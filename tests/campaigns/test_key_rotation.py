"""Key rotation end to end: a campaign gives each device a new key by a direct method (never
through the twin); the real agent saves it, reconnects with it through the device SDK and reports
its fingerprint; the back end promotes it to primary and revokes the old key. A device that is
offline keeps its key; a controller that stops at any step and starts again converges. The hub,
TLS, SQLite and both SDKs are real."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.iot.device import IoTHubDeviceClient
from azure.iot.device.exceptions import CredentialError

from device_agent import SimulatedFleet
from local_hub import LocalHub
from patterns.builtin import key_rotation
from patterns.campaigns import Campaign, CampaignSpec, Retries, Rollout
from patterns.contracts import key_rotation as contract
from twin_manager import Devices, Methods, TwinManager


class ControllerCrash(BaseException):
    """The controller's process dies (a BaseException: nothing in the campaign catches it)."""


def eventually(check: Callable[[], Any], timeout: float = 60, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(0.2)
    return value


def drive(campaign: Campaign, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while (status := campaign.tick()).status != "completed":
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    return status


def reporting(fleet: TwinManager, ids: list[str]) -> None:
    """Wait until every device is connected and reports the fingerprint of its key."""
    for device_id in ids:
        eventually(lambda d=device_id: contract.SECTION in fleet.twins.get(d).reported,
                   what=f"{device_id}'s key report")  # fmt: skip


def refused(hub: LocalHub, device_id: str, key: str) -> bool:
    """True when the hub refuses a device SDK connecting with `key` (a key the hub accepts would
    take the running agent's connection over: check only keys that should be refused)."""
    client = IoTHubDeviceClient.create_from_connection_string(
        hub.device_connection_string(device_id, key), server_verification_cert=hub.ca_certificate
    )
    try:
        client.connect()
    except CredentialError:
        return True
    finally:
        client.shutdown()
    return False


def saved_keys(tmp_path: Path, device_id: str) -> dict[str, Any]:
    path = tmp_path / "devices" / device_id / "agent" / "keys" / "keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    return dict(json.loads(path.read_text()))


def spec(campaign_id: str, **options: Any) -> CampaignSpec:
    return CampaignSpec(id=campaign_id, target="tags.kind = 'sensor'",
                        rollout=Rollout(per_minute=600), pattern=key_rotation.KeyRotation(),
                        **options)  # fmt: skip


def test_a_rotation_campaign_moves_every_device_to_a_new_key_and_revokes_the_old(
    hub: LocalHub, fleet: TwinManager, devices: Any, agents: Any, tmp_path: Path
) -> None:
    ids = devices(3)
    old = {d: fleet.devices.get(d).primary_key for d in ids}
    agents(ids)
    reporting(fleet, ids)

    assert drive(Campaign.create(fleet, spec("rotate"))).counts == {"succeeded": 3}

    for device_id in ids:
        identity = fleet.devices.get(device_id)
        twin = fleet.twins.get(device_id)
        reported = contract.KeyRotationReported.model_validate(twin.reported[contract.SECTION])
        assert reported.status == contract.KeyRotationStatus.ROTATED
        assert reported.campaign_id == "rotate:1"
        primary, secondary = key_rotation.fingerprints(fleet, device_id)
        assert reported.fingerprint == primary == contract.fingerprint(identity.primary_key or "")
        assert contract.fingerprint(old[device_id] or "") not in (primary, secondary)
        saved = saved_keys(tmp_path, device_id)
        assert saved["current"] == identity.primary_key != old[device_id]
        assert saved.get("pending") is None
        # The new key never went through the twin; the old one is refused, the new accepted.
        assert identity.primary_key not in json.dumps(twin.to_json())
        assert twin.connection_state == "Connected"
        assert refused(hub, device_id, old[device_id] or "")
    # (The new key's acceptance is the agents' own connection: a second client connecting with
    # it would take the device's connection over.)


def test_an_offline_device_fails_and_keeps_working_on_its_key(
    hub: LocalHub, fleet: TwinManager, devices: Any, agents: Any, tmp_path: Path
) -> None:
    online, offline = devices(2)
    key = fleet.devices.get(offline).primary_key or ""
    root = tmp_path / "offline"

    def power_on() -> SimulatedFleet:
        simulated = SimulatedFleet().start()
        simulated.add(fleet.devices.connection_string(offline), root, ca_cert=hub.ca_certificate)
        return simulated

    device = power_on()  # it ran once (and reported its key), then went away
    reporting(fleet, [offline])
    device.stop()
    eventually(lambda: fleet.twins.get(offline).connection_state == "Disconnected")
    agents([online])
    reporting(fleet, [online])

    status = drive(Campaign.create(fleet, spec("half")))
    assert status.counts == {"succeeded": 1, "failed": 1}
    assert list(status.reasons) == ["rotateKey: DeviceNotOnline; the device keeps its current key"]
    assert fleet.devices.get(offline).primary_key == key
    device = power_on()  # back: its key still works, and it says so
    try:
        eventually(lambda: fleet.twins.get(offline).connection_state == "Connected")
        reported = fleet.twins.get(offline).reported[contract.SECTION]
        assert reported["fingerprint"] == contract.fingerprint(key)
    finally:
        device.stop()


def test_from_the_command_line_and_listed_among_the_patterns(
    hub: LocalHub, fleet: TwinManager, devices: Any, agents: Any
) -> None:
    ids = devices(2)
    agents(ids)
    reporting(fleet, ids)

    def twinfleet(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "twinfleet", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    listed = twinfleet("patterns", "list")
    assert listed.returncode == 0, listed.stderr
    assert "keyRotation" in listed.stdout
    assert "patterns.builtin.key_rotation" in listed.stdout
    hub_dir = ("--hub-dir", str(hub.data_dir))
    created = twinfleet("campaign", "create", "key-rotation", "kr", "--target",
                        "tags.kind = 'sensor'", "--rate", "600", "--param", "key_bytes=48",
                        *hub_dir)  # fmt: skip
    assert created.returncode == 0, created.stderr
    run = twinfleet("campaign", "run", "kr", "--poll", "0.3", *hub_dir)
    assert run.returncode == 0, run.stdout + run.stderr
    for device_id in ids:
        primary = fleet.devices.get(device_id).primary_key or ""
        assert len(base64.b64decode(primary)) == 48
        assert fleet.twins.get(device_id).reported[contract.SECTION]["fingerprint"] == (
            contract.fingerprint(primary)
        )
        assert primary not in created.stdout + run.stdout + run.stderr


@pytest.mark.parametrize("stop", ["before-delivery", "after-delivery", "after-promotion"])
def test_a_controller_that_stops_between_steps_converges_when_started_again(
    stop: str, hub: LocalHub, fleet: TwinManager, devices: Any, agents: Any,
    clock: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    (device_id,) = devices(1)
    old = fleet.devices.get(device_id).primary_key or ""
    agents([device_id])
    reporting(fleet, [device_id])
    calls = {"invoke": 0, "set_keys": 0}
    invoke, set_keys = Methods.invoke, Devices.set_keys

    def dying_invoke(self: Methods, *args: Any, **kwargs: Any) -> Any:
        calls["invoke"] += 1
        if stop == "before-delivery" and calls["invoke"] == 1:
            raise ControllerCrash  # the keys are set; the device never hears of it
        return invoke(self, *args, **kwargs)

    def dying_set_keys(self: Devices, *args: Any, **kwargs: Any) -> Any:
        calls["set_keys"] += 1
        result = set_keys(self, *args, **kwargs)
        if stop == "after-promotion" and calls["set_keys"] == 2:
            raise ControllerCrash  # promoted; the device's outcome not yet recorded
        return result

    monkeypatch.setattr(Methods, "invoke", dying_invoke)
    monkeypatch.setattr(Devices, "set_keys", dying_set_keys)
    options = {"retries": Retries(max_attempts=2, backoff_seconds=1), "timeout_seconds": 60}
    first = Campaign.create(fleet, spec("restart", **options), clock=clock)

    def tick(campaign: Campaign) -> Any:
        clock.now += 1
        return campaign.tick()

    def until_it_dies(campaign: Campaign) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            tick(campaign)
            time.sleep(0.2)

    if stop == "before-delivery":
        with pytest.raises(ControllerCrash):
            tick(first)
        clock.now += 61  # the attempt times out: the restarted controller tries again
    elif stop == "after-delivery":
        tick(first)
        assert calls == {"invoke": 1, "set_keys": 1}
        eventually(lambda: (fleet.twins.get(device_id).reported[contract.SECTION]
                            .get("status") == "rotated"))  # fmt: skip
    else:
        with pytest.raises(ControllerCrash):
            until_it_dies(first)
    del first  # the controller is gone; another starts from what the hub holds
    second = Campaign.load(fleet, "restart", clock=clock)
    deadline = time.monotonic() + 60
    while (status := tick(second)).status != "completed":
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status.counts == {"succeeded": 1}
    identity = fleet.devices.get(device_id)
    reported = fleet.twins.get(device_id).reported[contract.SECTION]
    assert reported["fingerprint"] == contract.fingerprint(identity.primary_key or "")
    assert reported["campaignId"] == ("restart:2" if stop == "before-delivery" else "restart:1")
    assert refused(hub, device_id, old)


def test_a_bad_key_is_refused_by_the_device_without_echoing_it(
    hub: LocalHub, fleet: TwinManager, devices: Any, agents: Any
) -> None:
    (device_id,) = devices(1)
    key = fleet.devices.get(device_id).primary_key or ""
    agents([device_id])
    reporting(fleet, [device_id])
    secret = "c2hvcnQ="  # base64, but 5 bytes: not a key IoT Hub would take
    result = fleet.methods.invoke(device_id, contract.METHOD, {"key": secret, "campaignId": "x:1"})
    assert result.status == 400
    assert "16 to 64 bytes" in result.payload["error"]
    assert secret not in json.dumps(result.payload)
    request = contract.KeyRotationRequest(key=key, campaign_id="x:1")
    assert key not in repr(request)
    assert key not in str(request)
    assert request.wire()["key"] == key
    assert fleet.twins.get(device_id).reported[contract.SECTION]["fingerprint"] == (
        contract.fingerprint(key)
    )
