"""The service endpoint's contract: shapes against the OpenAPI definitions, identity etags,
IoT Hub's error shape, and raw HTTP that no SDK would send (none of which changes state)."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import socket
import ssl
import threading
import time
from typing import Any

import pytest
import requests
from azure.iot.device import IoTHubDeviceClient, MethodResponse
from azure.iot.hub.models import QuerySpecification, Twin, TwinProperties
from msrest.exceptions import HttpOperationError

from local_hub import LocalHub, testing, tokens


def _token(hub: LocalHub, *, key_name: str = "iothubowner", resource: str | None = None) -> str:
    parts = dict(p.split("=", 1) for p in hub.service_connection_string.split(";"))
    raw = base64.b64decode(parts["SharedAccessKey"])
    token = tokens.make_sas_token(resource or parts["HostName"], raw, int(time.time()) + 600)
    return f"{token}&skn={key_name}"


def _http(hub: LocalHub, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": _token(hub), **kwargs.pop("headers", {})}
    params = kwargs.pop("params", {"api-version": "2021-04-12"})
    with requests.Session() as session:
        return session.request(
            method,
            f"https://{hub.host}:{hub.service_port}{path}",
            headers=headers,
            params=params,
            verify=hub.ca_certificate_path,
            timeout=30,
            **kwargs,
        )


def _tls(hub: LocalHub) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=hub.ca_certificate_path)
    raw = socket.create_connection((hub.host, hub.service_port), timeout=5)
    return context.wrap_socket(raw, server_hostname=hub.host)


def _read_all(sock: ssl.SSLSocket) -> bytes:
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ssl.SSLError, ConnectionError):
        pass
    return received


def test_responses_match_the_openapi_definitions(
    hub: LocalHub, registry_manager: Any, make_device: Any, swagger: Any
) -> None:
    device = make_device("shape-1")
    swagger.check(_http(hub, "GET", "/devices/shape-1").json(), "Device")
    for identity in _http(hub, "GET", "/devices", params={"api-version": "x", "top": "5"}).json():
        swagger.check(identity, "Device")
    patch = {"tags": {"a": {"b": 1}}, "properties": {"desired": {"x": [1, "two", None]}}}
    patched = _http(hub, "PATCH", "/twins/shape-1", json=patch).json()
    swagger.check(patched, "Twin")
    swagger.check(_http(hub, "PUT", "/twins/shape-1", json={"tags": {}}).json(), "Twin")
    swagger.check(_http(hub, "GET", "/statistics/devices").json(), "RegistryStatistics")
    swagger.check(_http(hub, "GET", "/statistics/service").json(), "ServiceStatistics")
    page = _http(hub, "POST", "/devices/query", json={"query": "SELECT * FROM devices"})
    assert page.headers["x-ms-item-type"] == "twin"
    for twin in page.json():
        swagger.check(twin, "Twin")

    client = IoTHubDeviceClient.create_from_connection_string(
        device.connection_string, server_verification_cert=hub.ca_certificate
    )
    try:
        client.connect()
        client.on_method_request_received = lambda request: client.send_method_response(
            MethodResponse.create_from_method_request(request, 200, {"ok": True})
        )
        result = _http(
            hub, "POST", "/twins/shape-1/methods",
            json={"methodName": "ping", "payload": None, "responseTimeoutInSeconds": 10},
        )  # fmt: skip
        swagger.check(result.json(), "CloudToDeviceMethodResult")
        assert result.json() == {"status": 200, "payload": {"ok": True}}
        assert registry_manager.get_service_statistics().connected_device_count == 1
        assert registry_manager.get_twin("shape-1").connection_state == "Connected"
    finally:
        client.shutdown()


def test_errors_come_in_iot_hub_shape(hub: LocalHub) -> None:
    response = _http(hub, "GET", "/twins/nobody")
    assert response.status_code == 404
    assert response.headers["iothub-errorcode"] == "DeviceNotFound"
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"Message", "ExceptionMessage"}
    name, _, detail = body["Message"].partition(";")
    assert name == "ErrorCode:DeviceNotFound"
    fields = json.loads(detail)
    assert fields["errorCode"] == 404001
    assert "'nobody' is not registered" in fields["message"]
    assert {"trackingId", "timestampUtc"} <= set(fields)
    unknown = _http(hub, "GET", "/nowhere")
    assert (unknown.status_code, unknown.headers["iothub-errorcode"]) == (404, "NotFound")
    assert _http(hub, "POST", "/statistics/devices").status_code == 405


def test_identity_etags_guard_updates_and_deletes(registry_manager: Any) -> None:
    created = registry_manager.create_device_with_sas("etag-dev", None, None, "enabled")
    keys = created.authentication.symmetric_key
    updated = registry_manager.update_device_with_sas(
        "etag-dev", created.etag, keys.primary_key, keys.secondary_key, "disabled"
    )
    assert updated.etag != created.etag
    with pytest.raises(HttpOperationError) as caught:
        registry_manager.update_device_with_sas(
            "etag-dev", created.etag, keys.primary_key, keys.secondary_key, "enabled"
        )
    assert caught.value.response.status_code == 412
    with pytest.raises(HttpOperationError) as caught:
        registry_manager.delete_device("etag-dev", created.etag)
    assert caught.value.response.status_code == 412
    kept = registry_manager.get_device("etag-dev")
    assert (kept.status, kept.etag) == ("disabled", updated.etag)
    assert kept.authentication.symmetric_key.primary_key == keys.primary_key
    registry_manager.delete_device("etag-dev", updated.etag)
    with pytest.raises(HttpOperationError) as caught:
        registry_manager.update_device_with_sas("etag-dev", "*", None, None, "enabled")
    assert caught.value.response.status_code == 404


def test_replace_takes_back_a_twin_it_read(registry_manager: Any, make_device: Any) -> None:
    make_device("rmw-1")
    registry_manager.update_twin("rmw-1", Twin(tags={"a": 1, "b": 2}))
    twin = registry_manager.get_twin("rmw-1")
    twin.tags = {"a": 3}
    twin.properties.reported = {"ignored": True, "$version": 1}
    replaced = registry_manager.replace_twin("rmw-1", twin, twin.etag)
    assert replaced.tags == {"a": 3}
    assert "ignored" not in replaced.properties.reported
    with pytest.raises(HttpOperationError) as caught:  # a patch may not touch reported
        registry_manager.update_twin(
            "rmw-1", Twin(properties=TwinProperties(reported={"x": 1})), replaced.etag
        )
    assert caught.value.response.status_code == 400


def test_owner_tokens_for_another_policy_or_host_are_refused(hub: LocalHub) -> None:
    for token in (
        _token(hub, key_name="service"),
        _token(hub, resource="other-hub:443"),
        _token(hub).replace("&skn=iothubowner", ""),
    ):
        response = _http(hub, "GET", "/devices", headers={"Authorization": token})
        assert response.status_code == 401, token.split("sig=")[0]
        assert response.headers["iothub-errorcode"] == "IotHubUnauthorizedAccess"


def test_garbage_on_the_wire_leaves_the_hub_serving(
    hub: LocalHub, registry_manager: Any, make_device: Any
) -> None:
    make_device("wire-1")
    before = registry_manager.get_twin("wire-1")
    with _tls(hub) as sock:  # not HTTP at all
        sock.sendall(b"\x00\x01GARBAGE\r\n\r\n")
        reply = _read_all(sock)
        assert reply == b"" or (reply.startswith(b"HTTP/1.") and reply[8:12] == b" 400")
    with socket.create_connection((hub.host, hub.service_port), timeout=5) as plain:  # no TLS
        plain.sendall(b"GET /devices HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            assert not plain.recv(100).startswith(b"HTTP/1.1 200")
        except ConnectionError:
            pass
    with _tls(hub) as sock:  # a body cut short, then the connection drops
        request = (
            f"PATCH /twins/wire-1?api-version=2021-04-12 HTTP/1.1\r\nHost: {hub.host}\r\n"
            f"Authorization: {_token(hub)}\r\nContent-Type: application/json\r\n"
            "Content-Length: 400\r\n\r\n"
        )
        sock.sendall(request.encode() + b'{"tags": {"cut": true}}')
    oversized = {"tags": {"big": "x" * (2 * 1024 * 1024)}}
    assert _http(hub, "PATCH", "/twins/wire-1", json=oversized).status_code in (400, 413)
    for body in (b"\xff\xfe", b'{"tags": {"n": NaN}}', b'{"tags": {"a": 1}} trailing'):
        response = _http(
            hub, "PATCH", "/twins/wire-1", data=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, body
    time.sleep(0.2)
    after = registry_manager.get_twin("wire-1")
    assert (after.etag, after.tags) == (before.etag, before.tags)


def test_bad_continuation_and_page_size_are_400(hub: LocalHub) -> None:
    query = {"query": "SELECT * FROM devices"}
    for headers in ({"x-ms-continuation": "not-ours"}, {"x-ms-max-item-count": "0"}):
        assert _http(hub, "POST", "/devices/query", json=query, headers=headers).status_code == 400


def test_injected_503_then_recovery(
    hub: LocalHub, faults: testing.Faults, registry_manager: Any
) -> None:
    faults.inject(503, 1)
    failed = _http(hub, "GET", "/devices")
    assert failed.status_code == 503
    assert failed.headers["iothub-errorcode"] == "ServiceUnavailable"
    faults.inject(503, 1)
    assert registry_manager.get_devices() == []  # msrest retries a 503 by itself


def test_artifact_downloads_with_owner_auth_ranges_and_names(hub: LocalHub) -> None:
    image = bytes(range(256)) * 64
    assert _http(hub, "PUT", "/artifacts/img.bin", data=image, params={}).status_code == 201
    part = _http(hub, "GET", "/artifacts/img.bin", params={}, headers={"Range": "bytes=10-19"})
    assert (part.status_code, part.content) == (206, image[10:20])
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(image)}"
    head = _http(hub, "HEAD", "/artifacts/img.bin", params={})
    assert int(head.headers["Content-Length"]) == len(image)
    signed_for_other = hub.artifact_url("img.bin", ttl=60).replace("img.bin", "other.bin")
    with requests.Session() as session:
        assert session.get(signed_for_other, verify=hub.ca_certificate_path).status_code == 401
    assert _http(hub, "GET", "/artifacts/missing.bin", params={}).status_code == 404
    assert _http(hub, "PUT", "/artifacts/.hidden", data=b"x", params={}).status_code == 400
    assert not (hub.data_dir / "artifacts" / ".hidden").exists()


def test_concurrent_uploads_of_one_name_leave_one_whole_file(hub: LocalHub) -> None:
    images = [bytes([i]) * 300_000 for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        statuses = list(
            pool.map(
                lambda data: _http(hub, "PUT", "/artifacts/race.bin", data=data, params={}),
                images,
            )
        )
    assert [r.status_code for r in statuses] == [201] * 4
    stored = (hub.data_dir / "artifacts" / "race.bin").read_bytes()
    assert stored in images
    assert [p.name for p in (hub.data_dir / "artifacts").iterdir()] == ["race.bin"]


def test_method_payload_and_timeouts_are_validated(hub: LocalHub, make_device: Any) -> None:
    make_device("args-1")
    for body in (
        {"methodName": "", "payload": None},
        {"methodName": "m", "payload": "x" * (129 * 1024)},
        {"methodName": "m", "responseTimeoutInSeconds": 1},
        {"methodName": "m", "connectTimeoutInSeconds": "soon"},
    ):
        assert _http(hub, "POST", "/twins/args-1/methods", json=body).status_code == 400, body
    missing = _http(hub, "POST", "/twins/nobody/methods", json={"methodName": "m"})
    assert missing.headers["iothub-errorcode"] == "DeviceNotFound"


def test_queries_see_writes_made_between_pages(registry_manager: Any) -> None:
    for i in range(5):
        registry_manager.create_device_with_sas(f"pg-{i}", None, None, "enabled")
    spec = QuerySpecification(query="SELECT * FROM devices")
    first = registry_manager.query_iot_hub(spec, None, 2)
    registry_manager.update_twin("pg-4", Twin(tags={"seen": True}))
    rest: list[Any] = []
    token = first.continuation_token
    while token:
        page = registry_manager.query_iot_hub(spec, token, 2)
        rest += page.items
        token = page.continuation_token
    assert [t.device_id for t in first.items + rest] == [f"pg-{i}" for i in range(5)]
    assert rest[-1].tags == {"seen": True}


def test_no_thread_is_left_by_the_hub(make_hub: Any) -> None:
    before = {t.name for t in threading.enumerate()}
    hub = make_hub()
    hub.close()
    assert {t.name for t in threading.enumerate()} <= before


def test_artifacts_are_listed_signed_and_deleted_with_the_owner_key(hub: LocalHub) -> None:
    image = b"signed" * 100
    uploaded = _http(hub, "PUT", "/artifacts/s.bin", data=image, params={"ttl": "120"}).json()
    with requests.Session() as session:
        assert session.get(uploaded["url"], verify=hub.ca_certificate_path).content == image
    listed = _http(hub, "GET", "/artifacts", params={}).json()
    assert [(a["name"], a["size"]) for a in listed] == [("s.bin", len(image))]
    signed = _http(hub, "POST", "/artifacts/s.bin/url", params={"ttl": "60"})
    assert (signed.status_code, signed.json()["sha256"]) == (200, uploaded["sha256"])
    for ttl in ("0", "-5", "soon", str(10**12)):
        refused = _http(hub, "POST", "/artifacts/s.bin/url", params={"ttl": ttl})
        assert refused.status_code == 400
        assert "ttl" in refused.json()["Message"]
    assert _http(hub, "PUT", "/artifacts/t.bin", data=b"x", params={"ttl": "x"}).status_code == 400
    assert not (hub.data_dir / "artifacts" / "t.bin").exists()
    assert _http(hub, "POST", "/artifacts/none.bin/url", params={}).status_code == 404
    assert _http(hub, "DELETE", "/artifacts/s.bin", params={}).status_code == 204
    assert _http(hub, "DELETE", "/artifacts/s.bin", params={}).status_code == 404
    with requests.Session() as session:
        assert session.get(uploaded["url"], verify=hub.ca_certificate_path).status_code == 404
    unsigned = requests.get(f"https://{hub.host}:{hub.service_port}/artifacts",
                            verify=hub.ca_certificate_path, timeout=30)  # fmt: skip
    assert unsigned.status_code == 401
