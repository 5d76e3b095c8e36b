"""The reprovision policy, as DPS has it: when a re-registering device's enrollment now names
another hub, `updateHubAssignment` says whether it moves and `migrateDeviceData` whether its twin
goes along or it starts again from the initial twin. Real hubs, the real device SDK."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from azure.iot.device import ProvisioningDeviceClient

from local_hub import LocalHub
from local_hub.provisioning import EnrollmentError
from tests.provisioning.conftest import RunningDps
from twin_manager import DeviceNotFound, TwinManager

INITIAL = {"tags": {"line": "a"}, "properties": {"desired": {"interval": 30}}}
POLICIES = {
    "migrate": {"updateHubAssignment": True, "migrateDeviceData": True},
    "reset": {"updateHubAssignment": True, "migrateDeviceData": False},
    "never": {"updateHubAssignment": False, "migrateDeviceData": False},
}


def _register(dps: RunningDps, registration_id: str, key: str) -> Any:
    client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=dps.host, registration_id=registration_id, id_scope=dps.id_scope,
        symmetric_key=key, server_verification_cert=dps.ca_pem,
    )  # fmt: skip
    result = client.register()
    assert result.status == "assigned"
    return result.registration_state


@pytest.mark.parametrize(
    ("policy", "moves", "substatus", "twin"),
    [
        ("migrate", True, "deviceDataMigrated", ({"line": "b"}, 60)),
        ("reset", True, "deviceDataReset", ({"line": "a"}, 30)),
        ("never", False, "initialAssignment", ({"line": "b"}, 60)),
    ],
)
def test_the_reprovision_policy_decides_the_hub_and_the_twin_of_a_device_re_registering(
    make_hub: Callable[..., LocalHub], make_dps: Callable[..., RunningDps],
    policy: str, moves: bool, substatus: str, twin: tuple[dict[str, Any], int],
) -> None:  # fmt: skip
    first, second = make_hub(), make_hub()
    dps = make_dps([first, second])
    enrollments = dps.enrollments()
    registration_id = f"sensor-{policy}"
    doc = enrollments.create(
        registration_id, iot_hubs=[first.host], initial_twin=INITIAL, reprovision=POLICIES[policy]
    )
    assert doc["reprovisionPolicy"] == POLICIES[policy]
    keys = doc["attestation"]["symmetricKey"]
    assert _register(dps, registration_id, keys["primaryKey"]).assigned_hub == first.host
    old, new = TwinManager.from_local_hub(first), TwinManager.from_local_hub(second)
    old.twins.update(registration_id, tags={"line": "b"}, desired={"interval": 60})

    enrollments.create(
        registration_id, iot_hubs=[second.host], initial_twin=INITIAL,
        primary_key=keys["primaryKey"], secondary_key=keys["secondaryKey"],
        reprovision=POLICIES[policy], replace=True,
    )  # fmt: skip
    state = _register(dps, registration_id, keys["primaryKey"])

    assert (state.assigned_hub, state.sub_status) == (
        second.host if moves else first.host, substatus,
    )  # fmt: skip
    now, before = (new, old) if moves else (old, new)
    tags, interval = twin
    found = now.twins.get(registration_id)
    assert found.tags == tags
    assert found.desired["interval"] == interval
    with pytest.raises(DeviceNotFound):
        before.devices.get(registration_id)  # moving removes the identity from the old hub
    recorded = {r["registrationId"]: r for r in enrollments.registrations()}[registration_id]
    assert (recorded["assignedHub"], recorded["substatus"]) == (state.assigned_hub, substatus)


def test_a_bad_reprovision_policy_is_refused_naming_the_fields(
    hub: LocalHub, make_dps: Callable[..., RunningDps]
) -> None:
    enrollments = make_dps([hub]).enrollments()
    with pytest.raises(EnrollmentError, match="updateHubAssignment and migrateDeviceData"):
        enrollments.create_group("line-a", reprovision={"updateHubAssignment": "yes"})
    with pytest.raises(EnrollmentError, match="updateHubAssignment and migrateDeviceData"):
        enrollments.create("sensor-1", reprovision={"migrate": True})
