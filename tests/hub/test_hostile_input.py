"""Hostile JSON through the wire: raw HTTPS, raw MQTT and the SDKs. Every hostile input gets the
protocol's own refusal naming the problem, the connection stays up, nothing changes, and the log
gets a few lines, never a traceback."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
import requests
from azure.iot.hub.models import Twin, TwinProperties
from msrest.exceptions import HttpOperationError

from local_hub import LocalHub, tokens

HOSTILE: dict[str, tuple[bytes, str]] = {
    # name: (body, what the refusal must say)
    "100,000 [": (b"[" * 100_000, "pair up"),
    "deep arrays": (b'{"tags": {"a": ' + b"[" * 5000 + b"1" + b"]" * 5000 + b"}}", "deep"),
    "deep objects": (b'{"tags": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001, "deep"),
    "5,000-digit integer": (b'{"tags": {"n": ' + b"9" * 5000 + b"}}", "number of 5000"),
    "lone surrogate": (b'{"tags": {"s": "\\ud800"}}', "surrogate"),
    "NaN": (b'{"tags": {"n": NaN}}', "NaN"),
}


def _owner_token(hub: LocalHub) -> str:
    parts = dict(p.split("=", 1) for p in hub.service_connection_string.split(";"))
    key = base64.b64decode(parts["SharedAccessKey"])
    return (
        tokens.make_sas_token(parts["HostName"], key, int(time.time()) + 600) + "&skn=iothubowner"
    )


def _http(hub: LocalHub, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": _owner_token(hub), **kwargs.pop("headers", {})}
    with requests.Session() as session:
        return session.request(
            method,
            f"https://{hub.host}:{hub.service_port}{path}",
            headers=headers,
            params={"api-version": "2021-04-12"},
            verify=hub.ca_certificate_path,
            **kwargs,
        )


def _refusal(response: requests.Response) -> dict[str, Any]:
    """IoT Hub's error body: `Message` is "ErrorCode:<name>;<json>"."""
    assert response.status_code == 400, response.text[:300]
    assert response.headers["iothub-errorcode"] == "ArgumentInvalid"
    name, _, detail = response.json()["Message"].partition(";")
    assert name == "ErrorCode:ArgumentInvalid"
    return dict(json.loads(detail))


REST_TARGETS = [
    ("PATCH", "/twins/hostile-1"),
    ("PUT", "/twins/hostile-1"),
    ("PUT", "/devices/hostile-2"),
    ("POST", "/devices/query"),
    ("PUT", "/jobs/v2/hostile-job"),
    ("PUT", "/configurations/hostile-config"),
    ("POST", "/configurations/testQueries"),
    ("POST", "/twins/hostile-1/methods"),
]


def test_rest_refuses_hostile_json_everywhere_with_a_400(
    hub: LocalHub, registry_manager: Any, make_device: Any
) -> None:
    make_device("hostile-1")
    before = registry_manager.get_twin("hostile-1")
    for method, path in REST_TARGETS:
        for name, (body, named) in HOSTILE.items():
            response = _http(
                hub, method, path, data=body, headers={"Content-Type": "application/json"}
            )
            detail = _refusal(response)
            assert detail["errorCode"] == 400004
            assert named in detail["message"], (method, path, name, detail["message"])
            assert "request body was refused" in detail["message"]
    assert registry_manager.get_twin("hostile-1").etag == before.etag
    assert registry_manager.get_device("hostile-1") is not None
    with pytest.raises(HttpOperationError):
        registry_manager.get_device("hostile-2")


@pytest.mark.parametrize(
    "document",
    [b"[" * 100, b'{"o": ' + b"9" * 5000 + b"}", b'{"o": "\\ud800"}', b"\xff\xfe", b"[]"],
)
def test_a_forged_continuation_token_is_a_400(
    hub: LocalHub, registry_manager: Any, document: bytes
) -> None:
    for token in (base64.urlsafe_b64encode(document).decode(), "%%%", "x" * 2000):
        response = _http(
            hub,
            "POST",
            "/devices/query",
            json={"query": "SELECT * FROM devices"},
            headers={"x-ms-continuation": token},
        )
        assert "not one this hub issued" in _refusal(response)["message"]


def test_twin_depth_counts_arrays_through_the_sdk(
    hub: LocalHub, registry_manager: Any, make_device: Any
) -> None:
    make_device("arrays-1")
    nested: Any = "leaf"
    for _ in range(10):
        nested = [nested]
    registry_manager.update_twin(
        "arrays-1", Twin(properties=TwinProperties(desired={"a": nested})), "*"
    )
    with pytest.raises(HttpOperationError) as refused:
        registry_manager.update_twin(
            "arrays-1", Twin(properties=TwinProperties(desired={"a": [nested]})), "*"
        )
    assert refused.value.response.status_code == 400
    assert "arrays and objects 11 deep" in refused.value.response.text


def test_non_ascii_artifact_signature_is_a_401(hub: LocalHub, upload: Any) -> None:
    upload("img.bin", b"image")
    url = hub.artifact_url("img.bin", ttl=60)
    with requests.Session() as session:
        for forged in (url + "%C3%A9", url.replace("se=", "se=%C2%B2")):
            response = session.get(forged, verify=hub.ca_certificate_path)
            assert response.status_code == 401, forged
            assert response.headers["iothub-errorcode"] == "IotHubUnauthorizedAccess"


@pytest.mark.parametrize("query", ["top=%C2%B2", "top=" + "9" * 5000])
def test_odd_digits_in_numeric_parameters_are_a_400(hub: LocalHub, query: str) -> None:
    with requests.Session() as session:
        response = session.get(
            f"https://{hub.host}:{hub.service_port}/devices?api-version=2021-04-12&{query}",
            headers={"Authorization": _owner_token(hub)},
            verify=hub.ca_certificate_path,
        )
    assert "top must be a whole number" in _refusal(response)["message"]
