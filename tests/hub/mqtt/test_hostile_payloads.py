"""Hostile payloads over MQTT (a raw client over real TLS, and the device SDK): twin requests get
twin responses with status 400 naming the problem, method calls fail at once, the connection stays
up, and a burst of them costs the hub's log a few lines."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import logging
import time
from typing import Any

import pytest
import requests
from azure.iot.device import IoTHubDeviceClient
from azure.iot.hub.models import CloudToDeviceMethod
from msrest.exceptions import HttpOperationError

from local_hub import LocalHub, tokens
from local_hub.mqtt import codec

HOSTILE: dict[str, tuple[bytes, str]] = {
    # name: (body, what the refusal must say)
    "100,000 [": (b"[" * 100_000, "pair up"),
    "deep arrays": (b'{"a": ' + b"[" * 5000 + b"1" + b"]" * 5000 + b"}", "deep"),
    "deep objects": (b'{"a": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001, "deep"),
    "5,000-digit integer": (b'{"n": ' + b"9" * 5000 + b"}", "number of 5000"),
    "lone surrogate": (b'{"s": "\\ud800"}', "surrogate"),
    "NaN": (b'{"n": NaN}', "NaN"),
}


def _owner_token(hub: LocalHub) -> str:
    parts = dict(p.split("=", 1) for p in hub.service_connection_string.split(";"))
    key = base64.b64decode(parts["SharedAccessKey"])
    return (
        tokens.make_sas_token(parts["HostName"], key, int(time.time()) + 600) + "&skn=iothubowner"
    )


def test_mqtt_reported_patch_refusals_are_twin_responses(
    hub: LocalHub, registry_manager: Any, make_device: Any, raw_client: Any
) -> None:
    device = make_device("hostile-mqtt")
    client = raw_client()
    client.connect(hub, "hostile-mqtt", base64.b64decode(device.key))
    for i, (name, (body, named)) in enumerate(HOSTILE.items()):
        topic = f"$iothub/twin/PATCH/properties/reported/?$rid=h{i}"
        client.send(codec.Publish(topic, body, qos=1, packet_id=i + 1))
        response = client.receive()
        assert isinstance(response, codec.Publish), name
        assert response.topic == f"$iothub/twin/res/400/?$rid=h{i}"
        detail = json.loads(response.payload)
        assert detail["errorCode"] == 400004
        assert named in detail["message"], (name, detail["message"])
        assert client.receive() == codec.PubAck(i + 1)
    client.send(codec.Publish("$iothub/twin/PATCH/properties/reported/?$rid=ok", b'{"ok": 1}'))
    response = client.receive()
    assert isinstance(response, codec.Publish)
    assert response.topic == "$iothub/twin/res/204/?$rid=ok&$version=2"
    assert registry_manager.get_twin("hostile-mqtt").properties.reported["ok"] == 1


def test_a_twin_get_with_a_huge_rid_is_refused_and_the_connection_stays(
    hub: LocalHub, make_device: Any, raw_client: Any
) -> None:
    device = make_device("long-rid")
    client = raw_client()
    client.connect(hub, "long-rid", base64.b64decode(device.key))
    for rid in ("r" * 65_510, "r" * 129):
        client.send(codec.Publish(f"$iothub/twin/GET/?$rid={rid}", b" "))
        response = client.receive()
        assert isinstance(response, codec.Publish)
        assert response.topic.startswith("$iothub/twin/res/400/?$rid=")
        assert "at most 128 are allowed" in json.loads(response.payload)["message"]
    assert response.topic == f"$iothub/twin/res/400/?$rid={'r' * 129}"  # echoed when it fits
    client.send(codec.Publish("$iothub/twin/GET/?$rid=next", b" "))
    response = client.receive()
    assert isinstance(response, codec.Publish)
    assert response.topic == "$iothub/twin/res/200/?$rid=next"


@pytest.mark.parametrize("name", ["100,000 [", "5,000-digit integer", "lone surrogate"])
def test_a_hostile_method_response_fails_the_call_at_once(
    hub: LocalHub, registry_manager: Any, make_device: Any, raw_client: Any, name: str
) -> None:
    device = make_device("hostile-method")
    client = raw_client()
    client.connect(hub, "hostile-method", base64.b64decode(device.key))
    client.send(codec.Subscribe(1, (("$iothub/methods/POST/#", 1),)))
    assert client.receive() == codec.SubAck(1, (1,))
    method = CloudToDeviceMethod(method_name="probe", payload={}, response_timeout_in_seconds=300)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        call = pool.submit(registry_manager.invoke_device_method, "hostile-method", method)
        request = client.receive()
        assert isinstance(request, codec.Publish)
        rid = request.topic.rsplit("$rid=", 1)[1]
        body, named = HOSTILE[name]
        client.send(codec.Publish(f"$iothub/methods/res/200/?$rid={rid}", body))
        with pytest.raises(HttpOperationError) as refused:
            call.result(timeout=60)  # far below the method's 300 s
    assert refused.value.response.status_code == 400
    assert named in refused.value.response.text
    client.send(codec.PingReq())
    assert client.receive() == codec.PingResp()


def test_the_device_sdk_gets_an_error_not_a_hang(hub: LocalHub, make_device: Any) -> None:
    device = make_device("sdk-hostile")
    client = IoTHubDeviceClient.create_from_connection_string(
        device.connection_string, server_verification_cert=hub.ca_certificate
    )
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    try:
        client.connect()
        for patch in ({"s": "\ud800"}, {"deep": deep}):
            # the SDK raises ServiceError, or (on a later call) ClientError caused by one
            with pytest.raises(Exception, match=r"status 400|Unexpected failure") as failed:
                client.patch_twin_reported_properties(patch)
            assert "status 400" in f"{failed.value} {failed.value.__cause__}"
        client.patch_twin_reported_properties({"fine": True})
        assert client.get_twin()["reported"]["fine"] is True
    finally:
        client.shutdown()


def test_a_hostile_burst_costs_a_few_log_lines(
    hub: LocalHub, make_device: Any, raw_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    device = make_device("burst-1")
    client = raw_client()
    client.connect(hub, "burst-1", base64.b64decode(device.key))
    caplog.set_level(logging.DEBUG)
    bodies = [body for body, _ in HOSTILE.values()] * 50
    sent = 0
    for i, body in enumerate(bodies):
        client.send(codec.Publish(f"$iothub/twin/PATCH/properties/reported/?$rid={i}", body))
        sent += len(body)
        response = client.receive()
        assert isinstance(response, codec.Publish)
        assert response.topic.startswith("$iothub/twin/res/400/")
    url = f"https://{hub.host}:{hub.service_port}/twins/burst-1?api-version=2021-04-12"
    with requests.Session() as session:
        for _ in range(40):
            response = session.patch(
                url,
                data=HOSTILE["deep objects"][0],
                headers={"Authorization": _owner_token(hub)},
                verify=hub.ca_certificate_path,
            )
            assert response.status_code == 400
    hub_records = [r for r in caplog.records if r.name.startswith(("local_hub", "aiohttp"))]
    logged = sum(len(r.getMessage()) for r in hub_records)
    assert not [r for r in hub_records if r.exc_info], "a hostile input logged a traceback"
    assert logged < 4096, f"{sent} hostile bytes wrote {logged} bytes of log"
    refusals = [r for r in hub_records if "refused" in r.getMessage()]
    assert 2 <= len(refusals) <= 10  # five per source per minute: the device and the client
