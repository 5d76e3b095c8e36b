"""Retirement and replacement: a retired device can neither reconnect (device SDK refused) nor
provision itself back in (`ProvisioningDeviceClient` refused), while its group still admits
others; its twin is archived before the identity goes; campaigns leave it out and log who
retired what, when and why; a replacement converges to the old device's configuration and
firmware under the real agent."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.iot.device import IoTHubDeviceClient, ProvisioningDeviceClient
from azure.iot.device.common.evented_callback import EventedCallback
from azure.iot.device.exceptions import ClientError, ServiceError

from local_hub import LocalHub
from local_hub.provisioning import derive_device_key
from patterns import api, retiring
from patterns.builtin.retire import RETIRED_TAG, Retire
from patterns.campaigns import Campaign, CampaignSpec, FactoryReset, Reboot, plan
from tests.agent.conftest import SimDevice
from tests.provisioning.conftest import RunningDps
from twin_manager import ProvisioningService, TwinManager

IMAGE = b"replacement firmware image " * 1000


def _register(dps: RunningDps, registration_id: str, key: str) -> Any:
    client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=dps.host, registration_id=registration_id, id_scope=dps.id_scope,
        symmetric_key=key, server_verification_cert=dps.ca_pem,
    )  # fmt: skip
    return client.register()


def _refused_registration(dps: RunningDps, registration_id: str, key: str) -> str:
    client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=dps.host, registration_id=registration_id, id_scope=dps.id_scope,
        symmetric_key=key, server_verification_cert=dps.ca_pem,
    )  # fmt: skip
    try:
        with pytest.raises(ClientError) as refused:
            client.register()
    finally:  # after a refusal the SDK offers no public way to disconnect
        done = EventedCallback()
        client._pipeline.shutdown(callback=done)
        done.wait_for_completion()
    assert isinstance(refused.value.__cause__, ServiceError)
    return str(refused.value.__cause__)


def _connect(hub: LocalHub, state: Any, key: str) -> None:
    client = IoTHubDeviceClient.create_from_symmetric_key(
        key, state.assigned_hub, state.device_id, server_verification_cert=hub.ca_certificate
    )
    try:
        client.connect()
        client.disconnect()
    finally:
        client.shutdown()


def _twinfleet(hub: LocalHub, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "twinfleet", "device", *args, "--hub-dir", str(hub.data_dir)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_a_retired_device_cannot_reconnect_nor_reprovision(
    hub: LocalHub, make_dps: Callable[..., RunningDps]
) -> None:
    dps = make_dps([hub])
    group = dps.enrollments().create_group("line-a", initial_twin={"tags": {"line": "a"}})
    group_key = group["attestation"]["symmetricKey"]["primaryKey"]
    key = derive_device_key(group_key, "sensor-1")
    state = _register(dps, "sensor-1", key).registration_state
    _connect(hub, state, key)

    retired = _twinfleet(hub, "retire", "sensor-1", "--reason", "cracked housing",
                         "--dps-dir", str(dps.data_dir))  # fmt: skip
    assert retired.returncode == 0, retired.stderr
    assert "sensor-1 retired by" in retired.stdout
    assert "cracked housing" in retired.stdout
    assert "blocked in group line-a" in retired.stdout

    with pytest.raises(ClientError):
        _connect(hub, state, key)
    assert "invalid registration status disabled" in _refused_registration(dps, "sensor-1", key)
    # The rest of the group still provisions.
    other = derive_device_key(group_key, "sensor-2")
    assert _register(dps, "sensor-2", other).status == "assigned"
    with TwinManager.from_local_hub(hub) as fleet:
        assert [d.device_id for d in fleet.devices.list()] == ["sensor-2"]
        store = fleet.artifact_store()
        archives = [p.name for p in (hub.data_dir / "artifacts" / "retired").iterdir()]
        assert len(archives) == 1
        archive = json.loads(store.get_blob("retired", archives[0]))
    assert archive["twin"]["tags"]["line"] == "a"
    assert archive["retirement"]["reason"] == "cracked housing"
    assert "primaryKey" not in json.dumps(archive)


def test_a_kept_twin_stays_disabled_and_out_of_every_campaign(hub: LocalHub) -> None:
    with TwinManager.from_local_hub(hub) as fleet:
        for device_id in ("keep-1", "keep-2"):
            fleet.devices.create(device_id)
        key = fleet.devices.get("keep-1").primary_key
        kept = _twinfleet(hub, "retire", "keep-1", "--reason", "field recall", "--keep-twin")
        assert kept.returncode == 0, kept.stderr
        twin = fleet.twins.get("keep-1")
        assert twin.status == "disabled"
        assert twin.tags[RETIRED_TAG]["reason"] == "field recall"
        client = IoTHubDeviceClient.create_from_connection_string(
            hub.device_connection_string("keep-1", key or ""),
            server_verification_cert=hub.ca_certificate,
        )
        try:
            with pytest.raises(ClientError):
                client.connect()
        finally:
            client.shutdown()
        spec = CampaignSpec(id="everyone", pattern=Reboot(), target="IS_DEFINED(deviceId)")
        assert [d.device_id for d in plan(fleet, spec).devices] == ["keep-2"]


def test_retire_as_a_campaign_step_logs_who_when_and_why(hub: LocalHub) -> None:
    with TwinManager.from_local_hub(hub) as fleet:
        for i in range(3):
            fleet.devices.create(f"old-{i}")
            fleet.twins.update_tags(f"old-{i}", {"batch": "2019"})
        fleet.devices.create("young")
        spec = CampaignSpec(
            id="retire_2019", target="tags.batch = '2019'",
            pattern=Retire(reason="end of life", by="ops-oncall"),
        )  # fmt: skip
        campaign = Campaign.create(fleet, spec)
        status = campaign.run(poll=0.1)
        assert status.status == "completed"
        assert [d.device_id for d in fleet.devices.list()] == ["young"]
        lines = [line for line in status.log if "retired by ops-oncall" in line]
        assert len(lines) == 3
        assert all("end of life" in line and "identity deleted" in line for line in lines)


def test_a_replacement_converges_to_the_old_device_configuration_and_firmware(
    hub: LocalHub, tmp_path: Path, upload: Callable[[str, bytes], dict[str, Any]]
) -> None:
    with TwinManager.from_local_hub(hub) as fleet:
        fleet.devices.create("pump-old")
        fleet.twins.update(
            "pump-old", tags={"site": "plant-7", "twinfleet": {"fw2": {"state": "succeeded"}}},
            desired={"firmware": {"fwVersion": "2.0.0", **upload("pump.bin", IMAGE)},
                     "configuration": {"version": 4, "interval": 15}},
        )  # fmt: skip
        fleet.devices.create("pump-new")
        replaced = _twinfleet(hub, "replace", "pump-old", "pump-new", "--keep-twin")
        assert replaced.returncode == 0, replaced.stderr
        assert "replaced by pump-new" in replaced.stdout
        new = fleet.twins.get("pump-new")
        assert new.tags == {"site": "plant-7"}  # no campaign progress, no retirement
        assert fleet.twins.get("pump-old").tags[RETIRED_TAG]["reason"] == "replaced by pump-new"

        device = SimDevice(hub, fleet.devices.connection_string("pump-new"), tmp_path / "new",
                           initial_version="1.0.0").start()  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                reported = fleet.twins.get("pump-new").reported
                firmware = reported.get("firmware", {})
                configuration = reported.get("configuration", {})
                if (firmware.get("currentFwVersion") == "2.0.0"
                        and configuration.get("status") == "applied"):  # fmt: skip
                    break
                assert time.monotonic() < deadline, f"not converged: {reported}"
                time.sleep(0.2)
            assert configuration["version"] == 4
        finally:
            device.stop()


def test_retiring_an_individually_enrolled_device_disables_its_enrollment(
    hub: LocalHub, make_dps: Callable[..., RunningDps]
) -> None:
    dps = make_dps([hub])
    enrollment = dps.enrollments().create("solo-1")
    key = enrollment["attestation"]["symmetricKey"]["primaryKey"]
    assert _register(dps, "solo-1", key).status == "assigned"
    with TwinManager.from_local_hub(hub) as fleet:
        fleet.provisioning = ProvisioningService.from_dps_dir(dps.data_dir)
        verdict = retiring.retire_device(fleet, "solo-1", Retire(reason="stolen", by="security"))
        assert verdict.outcome == api.Outcome.SUCCEEDED, verdict.reason
        assert "enrollment disabled" in verdict.note
        assert dps.enrollments().enrollment("solo-1")["provisioningStatus"] == "disabled"
        assert "invalid registration status disabled" in _refused_registration(dps, "solo-1", key)
        assert fleet.devices.list() == []


def test_a_factory_reset_then_retirement_campaign(hub: LocalHub, tmp_path: Path) -> None:
    with TwinManager.from_local_hub(hub) as fleet:
        fleet.devices.create("eol-1")
        fleet.twins.update_tags("eol-1", {"batch": "eol"})
        device = SimDevice(
            hub, fleet.devices.connection_string("eol-1"), tmp_path / "eol-1"
        ).start()
        spec = CampaignSpec(
            id="wipe_and_retire", target="tags.batch = 'eol'", pattern=FactoryReset(),
            steps=(Retire(reason="decommissioned", by="ops"),), timeout_seconds=60,
        )  # fmt: skip
        campaign = Campaign.create(fleet, spec)
        try:  # the reset, until the device reports it done
            deadline = time.monotonic() + 60
            reset: dict[str, Any] = {}
            while reset.get("status") != "completed":
                assert time.monotonic() < deadline, "the device never reset"
                campaign.tick()
                time.sleep(0.2)
                reset = fleet.twins.get("eol-1").reported.get("factoryReset", {})
        finally:
            # The agent would keep knocking once retired; the SDK's refused reconnects leak a
            # socket pair inside paho, which this test is not about: it stops here.
            device.stop()
        status = campaign.run(poll=0.2)  # the next pass sees the reset and retires the device
        assert status.status == "completed"
        assert fleet.devices.list() == []
        assert any("eol-1 retired by ops" in line and "decommissioned" in line
                   for line in status.log)  # fmt: skip
        archives = list((hub.data_dir / "artifacts" / "retired").iterdir())
        archive = json.loads(archives[0].read_text())
        assert archive["twin"]["properties"]["reported"]["factoryReset"]["status"] == "completed"


def test_a_retire_campaign_from_the_command_line_blocks_the_group_members(
    hub: LocalHub, make_dps: Callable[..., RunningDps]
) -> None:
    dps = make_dps([hub])
    group = dps.enrollments().create_group("line-b", initial_twin={"tags": {"line": "b"}})
    keys = {r: derive_device_key(group["attestation"]["symmetricKey"]["primaryKey"], r)
            for r in ("b-1", "b-2")}  # fmt: skip
    for registration_id, key in keys.items():
        assert _register(dps, registration_id, key).status == "assigned"

    def campaign(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "twinfleet", "campaign", *args,
                   "--hub-dir", str(hub.data_dir)]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    created = campaign("create", "retire", "close_b", "--target", "tags.line = 'b'",
                       "--reason", "line b closed")  # fmt: skip
    assert created.returncode == 0, created.stderr
    ran = campaign("run", "close_b", "--poll", "0.2", "--dps-dir", str(dps.data_dir))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    for registration_id, key in keys.items():
        refusal = _refused_registration(dps, registration_id, key)
        assert "invalid registration status disabled" in refusal
    with TwinManager.from_local_hub(hub) as fleet:
        assert fleet.devices.list() == []
