"""The device endpoint through the real device SDK (sync and aio) and a raw MQTT client."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from azure.iot.device import IoTHubDeviceClient, MethodResponse
from azure.iot.device.aio import IoTHubDeviceClient as AioDeviceClient
from azure.iot.device.exceptions import CredentialError
from azure.iot.hub.models import CloudToDeviceMethod, Twin, TwinProperties

from local_hub import LocalHub
from local_hub.mqtt import codec

RawFactory = Callable[[], Any]


def _client(hub: LocalHub, connection_string: str, **kwargs: Any) -> IoTHubDeviceClient:
    return IoTHubDeviceClient.create_from_connection_string(
        connection_string, server_verification_cert=hub.ca_certificate, **kwargs
    )


def _wait(predicate: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_wrong_key_is_refused(hub: LocalHub, make_device: Any) -> None:
    device = make_device("wrong-key")
    other = base64.b64encode(b"k" * 32).decode()
    client = _client(hub, hub.device_connection_string(device.device_id, other))
    try:
        with pytest.raises(CredentialError):
            client.connect()
    finally:
        client.shutdown()


def test_disabled_and_unknown_devices_are_refused(
    hub: LocalHub, make_device: Any, raw_client: RawFactory
) -> None:
    device = make_device("disabled-1", status="disabled")
    key = base64.b64decode(device.key)
    assert raw_client().connect(hub, "disabled-1", key).return_code == 5
    assert raw_client().connect(hub, "nobody", key).return_code == 5


def test_expired_token_is_refused(hub: LocalHub, make_device: Any, raw_client: RawFactory) -> None:
    device = make_device("expired-1")
    key = base64.b64decode(device.key)
    ack = raw_client().connect(hub, "expired-1", key, expiry=int(time.time()) - 1)
    assert ack.return_code == 5
    assert raw_client().connect(hub, "expired-1", key).return_code == 0


def test_disabling_a_connected_device_disconnects_it(
    hub: LocalHub, registry_manager: Any, make_device: Any, raw_client: RawFactory
) -> None:
    device = make_device("to-disable")
    client = raw_client()
    client.connect(hub, "to-disable", base64.b64decode(device.key))
    identity = registry_manager.get_device("to-disable")
    registry_manager.update_device_with_sas(
        "to-disable", identity.etag, device.key, None, "disabled"
    )
    assert client.receive() is None
    assert registry_manager.get_twin("to-disable").connection_state == "Disconnected"


# paho-mqtt 1.6 leaks the loopback socketpair it wakes its loop with on every reconnect.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_session_survives_sas_renewal_reconnects(
    hub: LocalHub, registry_manager: Any, make_device: Any
) -> None:
    device = make_device("renewing")
    # The SDK renews 120 s before expiry by disconnecting and connecting again, and never
    # subscribes again: with a 123 s token it reconnects about every 3 s.
    client = _client(hub, device.connection_string, sastoken_ttl=123)
    calls: list[str] = []

    def on_method(request: Any) -> None:
        calls.append(request.name)
        client.send_method_response(MethodResponse.create_from_method_request(request, 200, None))

    try:
        client.connect()
        client.on_method_request_received = on_method
        time.sleep(4)  # at least one renewal reconnect
        method = CloudToDeviceMethod(
            method_name="ping", payload=None, response_timeout_in_seconds=10,
            connect_timeout_in_seconds=10,
        )  # fmt: skip
        assert registry_manager.invoke_device_method("renewing", method).status == 200
        assert calls == ["ping"]
    finally:
        client.shutdown()


def test_a_silent_connection_is_noticed_dead(
    hub: LocalHub, registry_manager: Any, make_device: Any, raw_client: RawFactory
) -> None:
    device = make_device("silent")
    client = raw_client()
    client.connect(hub, "silent", base64.b64decode(device.key), keepalive=1)
    assert registry_manager.get_twin("silent").connection_state == "Connected"
    assert client.receive(timeout=5) is None  # closed after 1.5 keep-alive periods
    assert _wait(lambda: registry_manager.get_twin("silent").connection_state == "Disconnected")


def test_malformed_packet_closes_only_that_connection(
    hub: LocalHub, make_device: Any, raw_client: RawFactory
) -> None:
    good, bad = make_device("good-1"), make_device("bad-1")
    healthy = raw_client()
    healthy.connect(hub, "good-1", base64.b64decode(good.key))
    broken = raw_client()
    broken.connect(hub, "bad-1", base64.b64decode(bad.key))
    broken.send(b"\x82\x04\x00\x01\x00\xff")  # a SUBSCRIBE whose topic overruns its length
    assert broken.receive() is None
    healthy.send(codec.PingReq())
    assert healthy.receive() == codec.PingResp()


def test_duplicate_reported_patch_is_applied_once(
    hub: LocalHub, registry_manager: Any, make_device: Any, raw_client: RawFactory
) -> None:
    device = make_device("dup-1")
    client = raw_client()
    client.connect(hub, "dup-1", base64.b64decode(device.key))
    client.send(codec.Subscribe(1, (("$iothub/twin/res/#", 1),)))
    assert client.receive() == codec.SubAck(1, (1,))
    topic = "$iothub/twin/PATCH/properties/reported/?$rid=abc"
    body = json.dumps({"counter": 1}).encode()
    for dup in (False, True):
        client.send(codec.Publish(topic, body, qos=1, packet_id=5, dup=dup))
        response = client.receive()
        assert isinstance(response, codec.Publish)
        assert response.topic == "$iothub/twin/res/204/?$rid=abc&$version=2"
        assert client.receive() == codec.PubAck(5)
    assert registry_manager.get_twin("dup-1").properties.reported["$version"] == 2


def test_bad_reported_patch_gets_an_error_and_changes_nothing(
    hub: LocalHub, registry_manager: Any, make_device: Any, raw_client: RawFactory
) -> None:
    device = make_device("bad-patch")
    client = raw_client()
    client.connect(hub, "bad-patch", base64.b64decode(device.key))
    for rid, body in (("1", b"{not json"), ("2", json.dumps({"a.b": 1}).encode())):
        client.send(codec.Publish(f"$iothub/twin/PATCH/properties/reported/?$rid={rid}", body))
        response = client.receive()
        assert isinstance(response, codec.Publish)
        assert response.topic == f"$iothub/twin/res/400/?$rid={rid}"
    assert registry_manager.get_twin("bad-patch").properties.reported["$version"] == 1


def test_aio_client_round_trip(hub: LocalHub, registry_manager: Any, make_device: Any) -> None:
    device = make_device("aio-1")

    async def scenario() -> dict[str, Any]:
        client = AioDeviceClient.create_from_connection_string(
            device.connection_string, server_verification_cert=hub.ca_certificate
        )
        received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        try:
            await client.connect()
            client.on_twin_desired_properties_patch_received = lambda p: loop.call_soon_threadsafe(
                received.put_nowait, p
            )
            await client.patch_twin_reported_properties({"model": "gw-100"})
            patch = Twin(properties=TwinProperties(desired={"mode": "eco"}))
            await loop.run_in_executor(None, registry_manager.update_twin, "aio-1", patch, "*")
            return await asyncio.wait_for(received.get(), 10)
        finally:
            await client.shutdown()

    assert asyncio.run(scenario()) == {"mode": "eco", "$version": 2}
    assert registry_manager.get_twin("aio-1").properties.reported["model"] == "gw-100"


def test_telemetry_is_kept(hub: LocalHub, make_device: Any) -> None:
    from azure.iot.device import Message

    device = make_device("telemetry-1")
    client = _client(hub, device.connection_string)
    try:
        client.connect()
        message = Message(json.dumps({"temperature": 21.5}), content_type="application/json")
        message.custom_properties["alert"] = "no"
        client.send_message(message)
    finally:
        client.shutdown()
    log = hub.call(_telemetry(hub, "telemetry-1"))
    assert log[-1][1]["alert"] == "no"
    assert json.loads(log[-1][2]) == {"temperature": 21.5}


async def _telemetry(hub: LocalHub, device_id: str) -> list[tuple[str, dict[str, str], bytes]]:
    return hub.server.registry.telemetry(device_id)
