"""The SDKs against the local hub: identities, twins both ways, methods."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from azure.iot.device import IoTHubDeviceClient, MethodResponse
from azure.iot.hub.models import CloudToDeviceMethod, Twin, TwinProperties
from msrest.exceptions import HttpOperationError

from local_hub import LocalHub


def _device_client(hub: LocalHub, connection_string: str, **kwargs: Any) -> IoTHubDeviceClient:
    return IoTHubDeviceClient.create_from_connection_string(
        connection_string, server_verification_cert=hub.ca_certificate, **kwargs
    )


def test_twin_round_trip_both_ways(hub: LocalHub, registry_manager: Any, make_device: Any) -> None:
    device = make_device("thermostat-1")
    client = _device_client(hub, device.connection_string)
    patches: list[dict[str, Any]] = []
    received = threading.Event()

    def on_patch(patch: dict[str, Any]) -> None:
        patches.append(patch)
        received.set()

    try:
        client.connect()
        client.on_twin_desired_properties_patch_received = on_patch
        assert client.get_twin() == {"desired": {"$version": 1}, "reported": {"$version": 1}}
        client.patch_twin_reported_properties({"firmware": {"currentFwVersion": "1.0.0"}})
        twin = registry_manager.get_twin("thermostat-1")
        assert twin.properties.reported["firmware"] == {"currentFwVersion": "1.0.0"}
        assert twin.properties.reported["$version"] == 2
        assert twin.connection_state == "Connected"

        patch = Twin(properties=TwinProperties(desired={"telemetryInterval": 30}))
        updated = registry_manager.update_twin("thermostat-1", patch, twin.etag)
        assert updated.properties.desired["telemetryInterval"] == 30
        assert received.wait(10)
        assert patches == [{"telemetryInterval": 30, "$version": 2}]
        client.patch_twin_reported_properties({"firmware": None})
        assert client.get_twin()["reported"] == {"$version": 3}
    finally:
        client.shutdown()


def test_stale_etag_is_refused(hub: LocalHub, registry_manager: Any, make_device: Any) -> None:
    make_device("etag-1")
    twin = registry_manager.get_twin("etag-1")
    registry_manager.update_twin("etag-1", Twin(tags={"ring": "canary"}), twin.etag)
    with pytest.raises(HttpOperationError) as caught:
        registry_manager.update_twin("etag-1", Twin(tags={"ring": "main"}), twin.etag)
    assert caught.value.response.status_code == 412
    assert registry_manager.get_twin("etag-1").tags == {"ring": "canary"}


def test_direct_method_online_offline(
    hub: LocalHub, registry_manager: Any, make_device: Any
) -> None:
    device = make_device("method-1")
    offline = CloudToDeviceMethod(method_name="reboot", payload={"delay": 1})
    with pytest.raises(HttpOperationError) as caught:
        registry_manager.invoke_device_method("method-1", offline)
    assert caught.value.response.status_code == 404
    assert caught.value.response.headers["iothub-errorcode"] == "DeviceNotOnline"

    client = _device_client(hub, device.connection_string)

    def on_method(request: Any) -> None:
        response = MethodResponse.create_from_method_request(
            request, 200, {"echo": request.payload, "name": request.name}
        )
        client.send_method_response(response)

    try:
        client.connect()
        client.on_method_request_received = on_method
        result = registry_manager.invoke_device_method(
            "method-1",
            CloudToDeviceMethod(
                method_name="reboot", payload={"delay": 1}, response_timeout_in_seconds=10
            ),
        )
        assert result.status == 200
        assert result.payload == {"echo": {"delay": 1}, "name": "reboot"}
    finally:
        client.shutdown()


def test_direct_method_timeout_is_504(
    hub: LocalHub, registry_manager: Any, make_device: Any
) -> None:
    device = make_device("slow-1")
    client = _device_client(hub, device.connection_string)
    try:
        client.connect()
        client.on_method_request_received = lambda request: None  # never answers
        method = CloudToDeviceMethod(
            method_name="hang", payload=None, response_timeout_in_seconds=5
        )
        with pytest.raises(HttpOperationError) as caught:
            registry_manager.invoke_device_method("slow-1", method)
        assert caught.value.response.status_code == 504
        assert caught.value.response.headers["iothub-errorcode"] == "GatewayTimeout"
    finally:
        client.shutdown()


def test_method_waits_for_a_device_that_connects_within_connect_timeout(
    hub: LocalHub, registry_manager: Any, make_device: Any
) -> None:
    device = make_device("late-1")
    client = _device_client(hub, device.connection_string)

    def connect_later() -> None:
        client.connect()
        client.on_method_request_received = lambda request: client.send_method_response(
            MethodResponse.create_from_method_request(request, 201, "ok")
        )

    timer = threading.Timer(1.0, connect_later)
    timer.start()
    try:
        method = CloudToDeviceMethod(
            method_name="hello", payload=None, response_timeout_in_seconds=10,
            connect_timeout_in_seconds=15,
        )  # fmt: skip
        result = registry_manager.invoke_device_method("late-1", method)
        assert (result.status, result.payload) == (201, "ok")
    finally:
        timer.join()
        client.shutdown()
