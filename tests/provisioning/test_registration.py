"""Devices provision themselves through the unmodified `ProvisioningDeviceClient` (sync and aio)
against a local provisioning service, then connect to the hub they were assigned."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from azure.iot.device import IoTHubDeviceClient, ProvisioningDeviceClient
from azure.iot.device.aio import ProvisioningDeviceClient as AioProvisioningDeviceClient
from azure.iot.device.common.evented_callback import EventedCallback
from azure.iot.device.exceptions import ClientError, ServiceError
from azure.iot.hub import IoTHubRegistryManager

from local_hub import LocalHub
from local_hub.provisioning import derive_device_key
from local_hub.provisioning.allocation import choose_hub
from tests.provisioning.conftest import RunningDps


def _register(dps: RunningDps, registration_id: str, key: str, payload: Any = None) -> Any:
    client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=dps.host,
        registration_id=registration_id,
        id_scope=dps.id_scope,
        symmetric_key=key,
        server_verification_cert=dps.ca_pem,
    )
    if payload is not None:
        client.provisioning_payload = payload
    return client.register()


def _refusal(dps: RunningDps, registration_id: str, key: str) -> BaseException:
    """The error a refused registration ends with.

    After a refusal the SDK stays connected and offers no public way to disconnect (it shuts its
    pipeline down only after an assignment), so the test shuts the pipeline down itself.
    """
    client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=dps.host,
        registration_id=registration_id,
        id_scope=dps.id_scope,
        symmetric_key=key,
        server_verification_cert=dps.ca_pem,
    )
    try:
        with pytest.raises(ClientError) as refused:
            client.register()
    finally:
        done = EventedCallback()
        client._pipeline.shutdown(callback=done)
        done.wait_for_completion()
    cause = refused.value.__cause__
    assert isinstance(cause, ServiceError)
    return cause


def _registry(hub: LocalHub) -> Any:
    manager = IoTHubRegistryManager.from_connection_string(hub.service_connection_string)
    manager.protocol.config.connection.verify = hub.ca_certificate_path
    return manager


def test_an_individual_enrollment_provisions_a_device_that_then_connects_with_its_twin(
    hub: LocalHub, make_dps: Callable[..., RunningDps]
) -> None:
    dps = make_dps([hub])
    twin = {"tags": {"region": "north"}, "properties": {"desired": {"telemetryInterval": 30}}}
    enrollment = dps.enrollments().create(
        "sensor-1", initial_twin=twin, payload={"site": "plant-7"}
    )
    key = enrollment["attestation"]["symmetricKey"]["primaryKey"]

    result = _register(dps, "sensor-1", key, payload={"model": "t1000"})

    assert result.status == "assigned"
    state = result.registration_state
    assert (state.assigned_hub, state.device_id) == (hub.host, "sensor-1")
    assert state.sub_status == "initialAssignment"
    assert json.loads(state.response_payload) == {"site": "plant-7"}
    recorded = {r["registrationId"]: r for r in dps.enrollments().registrations()}["sensor-1"]
    assert recorded["devicePayload"] == {"model": "t1000"}
    assert recorded["assignedHub"] == hub.host

    device = IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=key,
        hostname=state.assigned_hub,
        device_id=state.device_id,
        server_verification_cert=hub.ca_certificate,
    )
    try:
        device.connect()
        assert device.get_twin()["desired"]["telemetryInterval"] == 30
    finally:
        device.shutdown()
    assert _registry(hub).get_twin("sensor-1").tags == {"region": "north"}

    again = _register(dps, "sensor-1", key)
    assert again.status == "assigned"
    assert (again.registration_state.assigned_hub, again.registration_state.device_id) == (
        hub.host,
        "sensor-1",
    )


async def _register_aio(dps: RunningDps, registration_id: str, key: str) -> Any:
    client = AioProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=dps.host,
        registration_id=registration_id,
        id_scope=dps.id_scope,
        symmetric_key=key,
        server_verification_cert=dps.ca_pem,
    )
    return await client.register()


def test_a_group_spreads_devices_over_two_hubs_by_hash_and_keeps_them_there(
    make_hub: Callable[..., LocalHub], make_dps: Callable[..., RunningDps]
) -> None:
    hubs = [make_hub(), make_hub()]
    dps = make_dps(hubs)
    group = dps.enrollments().create_group(
        "line-a", initial_twin={"tags": {"line": "a"}}, allocation="hashed"
    )
    group_key = group["attestation"]["symmetricKey"]["primaryKey"]
    ids = [f"dev-{n}" for n in range(6)]
    hosts = [hub.host for hub in hubs]
    expected = {rid: choose_hub("hashed", rid, hosts, []) for rid in ids}

    async def register_all() -> list[Any]:
        return await asyncio.gather(
            *(_register_aio(dps, rid, derive_device_key(group_key, rid)) for rid in ids)
        )

    results = asyncio.run(register_all())

    assigned = {r.registration_state.device_id: r.registration_state.assigned_hub for r in results}
    assert assigned == expected
    by_host = {hub.host: hub for hub in hubs}
    for rid, host in assigned.items():
        assert _registry(by_host[host]).get_twin(rid).tags == {"line": "a"}
    again = asyncio.run(_register_aio(dps, ids[0], derive_device_key(group_key, ids[0])))
    assert again.registration_state.assigned_hub == expected[ids[0]]


def test_static_allocation_assigns_to_the_enrollments_hub(
    make_hub: Callable[..., LocalHub], make_dps: Callable[..., RunningDps]
) -> None:
    hubs = [make_hub(), make_hub()]
    dps = make_dps(hubs)
    group = dps.enrollments().create_group("pinned", allocation="static", iot_hubs=[hubs[1].host])
    key = derive_device_key(group["attestation"]["symmetricKey"]["secondaryKey"], "pin-1")

    result = _register(dps, "pin-1", key)

    assert result.registration_state.assigned_hub == hubs[1].host


@pytest.mark.parametrize(
    "case", ["wrong key", "unknown registration", "disabled enrollment", "disabled group"]
)
def test_refused_registrations_create_nothing(
    case: str, hub: LocalHub, make_dps: Callable[..., RunningDps]
) -> None:
    dps = make_dps([hub])
    enrollments = dps.enrollments()
    enrollment = enrollments.create("known", enabled=case != "disabled enrollment")
    group = enrollments.create_group("grp", enabled=case != "disabled group")
    key = enrollment["attestation"]["symmetricKey"]["primaryKey"]
    registration_id = "known"
    if case == "wrong key":
        key = group["attestation"]["symmetricKey"]["primaryKey"]
    elif case == "unknown registration":
        registration_id, key = "stranger", derive_device_key(key, "stranger")
    elif case == "disabled group":
        registration_id = "member"
        key = derive_device_key(group["attestation"]["symmetricKey"]["primaryKey"], "member")

    refused = _refusal(dps, registration_id, key)

    expected = "invalid registration status disabled" if "disabled" in case else "status code 401"
    assert expected in str(refused)
    assert enrollments.registrations() == []
    assert _registry(hub).get_devices() == []


def test_the_service_comes_back_the_same_after_a_restart(
    hub: LocalHub, make_dps: Callable[..., RunningDps]
) -> None:
    dps = make_dps([hub])
    enrollment = dps.enrollments().create("keeper")
    key = enrollment["attestation"]["symmetricKey"]["primaryKey"]
    first = _register(dps, "keeper", key)
    info = dps.info
    dps.close()

    restarted = make_dps([hub], data_dir=dps.data_dir, host=dps.host)

    assert restarted.info["idScope"] == info["idScope"]
    owner_key = info["serviceConnectionString"].split("SharedAccessKey=")[1]
    assert restarted.info["serviceConnectionString"].endswith(f"SharedAccessKey={owner_key}")
    again = _register(restarted, "keeper", key)
    assert again.registration_state.assigned_hub == first.registration_state.assigned_hub
    assert json.loads(json.dumps(restarted.enrollments().enrollment("keeper"))) == enrollment


# The SDK reconnects after the service drops it and leaves paho's wake-up socketpair of the dropped
# connection to the garbage collector ("unraisable"): the SDK's noise, not the service's.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_registration_survives_a_service_restart_between_register_and_poll(
    hub: LocalHub, make_dps: Callable[..., RunningDps]
) -> None:
    dps = make_dps([hub])
    enrollment = dps.enrollments().create("phoenix")
    key = enrollment["attestation"]["symmetricKey"]["primaryKey"]
    outcome: dict[str, Any] = {}

    def register() -> None:
        outcome["result"] = _register(dps, "phoenix", key)

    device = threading.Thread(target=register)
    device.start()
    database = sqlite3.connect(dps.data_dir / "dps.db")
    try:
        # The SDK polls 2 s after the 202 (its fixed first interval): restart inside that gap.
        while not database.execute("SELECT COUNT(*) FROM operations").fetchone()[0]:
            time.sleep(0.02)
    finally:
        database.close()
    dps.close()
    make_dps([hub], data_dir=dps.data_dir, host=dps.host)
    device.join(60)

    state = outcome["result"].registration_state
    assert (state.assigned_hub, state.device_id) == (hub.host, "phoenix")
