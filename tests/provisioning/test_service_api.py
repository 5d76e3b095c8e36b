"""The provisioning service's REST API: enrollments and groups managed with the owner SAS over
HTTPS, in DPS's shapes; a device then provisions through what it made."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import requests

from local_hub import LocalHub, tokens
from local_hub.provisioning import derive_device_key
from tests.provisioning.conftest import RunningDps
from tests.provisioning.test_registration import _register


class _Service:
    def __init__(self, dps: RunningDps) -> None:
        fields = dict(p.split("=", 1) for p in dps.info["serviceConnectionString"].split(";"))
        self.host_name = fields["HostName"]
        self.key = base64.b64decode(fields["SharedAccessKey"])
        self.ca = dps.info["caCertificatePath"]

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: bytes | None = None,
        raw: bytes | None = None,
    ) -> Any:
        token = tokens.make_sas_token(
            self.host_name, key or self.key, int(time.time()) + 300, "provisioningserviceowner"
        )
        return requests.request(
            method,
            f"https://{self.host_name}{path}?api-version=2021-10-01",
            json=body,
            data=raw,
            headers={"Authorization": token},
            verify=self.ca,
            timeout=30,
        )


def test_enrollments_through_the_service_api(
    hub: LocalHub, make_dps: Callable[..., RunningDps]
) -> None:
    dps = make_dps([hub])
    service = _Service(dps)
    group = {
        "enrollmentGroupId": "api-group",
        "attestation": {"type": "symmetricKey"},
        "allocationPolicy": "hashed",
        "initialTwin": {"tags": {"via": "api"}, "properties": {"desired": {}}},
    }
    created = service.call("PUT", "/enrollmentGroups/api-group", group)
    assert created.status_code == 200, created.text
    group_key = created.json()["attestation"]["symmetricKey"]["primaryKey"]
    disabled = service.call(
        "PUT", "/enrollmentGroups/api-group", {**group, "provisioningStatus": "disabled"}
    )
    assert disabled.json()["attestation"]["symmetricKey"]["primaryKey"] == group_key
    assert disabled.json()["provisioningStatus"] == "disabled"
    service.call("PUT", "/enrollmentGroups/api-group", group)
    listed = service.call("POST", "/enrollmentGroups/query", {"query": "*"}).json()
    assert [g["enrollmentGroupId"] for g in listed] == ["api-group"]

    result = _register(dps, "api-dev", derive_device_key(group_key, "api-dev"))

    assert result.status == "assigned"
    state = service.call("GET", "/registrations/api-dev").json()
    assert (state["status"], state["assignedHub"], state["enrollmentGroupId"]) == (
        "assigned",
        hub.host,
        "api-group",
    )
    assert service.call("DELETE", "/registrations/api-dev").status_code == 204
    assert service.call("DELETE", "/enrollmentGroups/api-group").status_code == 204
    missing = service.call("GET", "/enrollmentGroups/api-group")
    assert missing.status_code == 404
    assert missing.json()["errorCode"] == 404201


def test_the_service_api_refuses_bad_credentials_and_bad_documents(
    hub: LocalHub, make_dps: Callable[..., RunningDps]
) -> None:
    service = _Service(make_dps([hub]))

    forged = service.call("GET", "/enrollments/x", key=b"not the key")
    assert (forged.status_code, forged.json()["errorCode"]) == (401, 401002)
    assert "sig=" not in forged.text
    bad_twin = service.call("PUT", "/enrollments/x", {"initialTwin": {"reported": {}}})
    assert bad_twin.status_code == 400
    assert "may hold only tags and properties" in bad_twin.json()["message"]
    null = service.call("PUT", "/enrollments/x", raw=b"null")
    assert (null.status_code, null.json()["message"]) == (
        400,
        "The request body must be a JSON object.",
    )
    deep = service.call("PUT", "/enrollments/x", raw=b"[" * 100_000)
    assert (deep.status_code, deep.json()["message"]) == (
        400,
        "The request body is not valid JSON.",
    )
    x509 = service.call("PUT", "/enrollments/x", {"attestation": {"type": "x509"}})
    assert (x509.status_code, x509.json()["message"]) == (
        400,
        "Only symmetricKey attestation is supported.",
    )
    assert service.call("POST", "/enrollments/query").json() == []
