"""API fuzzing with schemathesis: every service operation the hub implements, generated from the
OpenAPI description azure-iot-hub was built from (shared/specs), sent over real HTTPS with a
real SAS token. No request may get a 5xx, and every 200 must match the operation's response
schema. Examples per operation are bounded so the run stays within seconds."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from local_hub import LocalHub, tokens
from tests.conftest import allocate_loopback

SPEC = Path(__file__).parents[3] / "shared/specs/iothub-service-2021-04-12.swagger.json"


def _as_served(spec: dict[str, Any]) -> dict[str, Any]:
    """The description, relaxed where IoT Hub and the SDK it was generated for disagree with it.

    - An optional property may be null: IoT Hub sends `"statusReason": null` and the like, and
      msrest takes null for any optional property (Swagger 2.0 has no other way to say so).
    - Twin property maps (`tags`, `desired`, `reported`) hold any JSON values; the description
      says each value is an object, but `{"mode": "eco"}` is a valid twin.
    """
    for definition in spec["definitions"].values():
        required = set(definition.get("required", []))
        for name, prop in definition.get("properties", {}).items():
            if name not in required:
                if "$ref" in prop:
                    definition["properties"][name] = {"allOf": [prop], "x-nullable": True}
                else:
                    prop["x-nullable"] = True
            if prop.get("additionalProperties") == {"type": "object"}:
                prop["additionalProperties"] = {}
    return spec


IMPLEMENTED = {
    ("GET", "/configurations/{id}"), ("PUT", "/configurations/{id}"),
    ("DELETE", "/configurations/{id}"), ("GET", "/configurations"),
    ("POST", "/configurations/testQueries"),
    ("GET", "/statistics/devices"), ("GET", "/statistics/service"),
    ("GET", "/devices"), ("POST", "/devices"), ("POST", "/devices/query"),
    ("GET", "/devices/{id}"), ("PUT", "/devices/{id}"), ("DELETE", "/devices/{id}"),
    ("GET", "/twins/{id}"), ("PUT", "/twins/{id}"), ("PATCH", "/twins/{id}"),
    ("GET", "/jobs/v2/{id}"), ("PUT", "/jobs/v2/{id}"), ("POST", "/jobs/v2/{id}/cancel"),
    ("GET", "/jobs/v2/query"), ("POST", "/twins/{deviceId}/methods"),
    ("POST", "/jobs/create"), ("GET", "/jobs"), ("GET", "/jobs/{id}"), ("DELETE", "/jobs/{id}"),
}  # fmt: skip


@pytest.fixture(scope="module")
def fuzzed_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    with LocalHub(tmp_path_factory.mktemp("fuzzed") / "hub", host=allocate_loopback()) as hub:
        yield hub


def _authorization(hub: LocalHub) -> str:
    parts = dict(p.split("=", 1) for p in hub.service_connection_string.split(";"))
    key = base64.b64decode(parts["SharedAccessKey"])
    token = tokens.make_sas_token(parts["HostName"], key, int(time.time()) + 600)
    return token + "&skn=iothubowner"


# schemathesis' own pytest plugin (schema.parametrize / from_fixture) does not run under this
# pytest; each operation's case strategy is driven by hypothesis directly instead.
@pytest.mark.skipif(not SPEC.exists(), reason="shared/specs is not beside this checkout")
@pytest.mark.parametrize(("method", "path"), sorted(IMPLEMENTED))
def test_no_operation_answers_5xx_or_off_schema(
    method: str, path: str, fuzzed_hub: LocalHub
) -> None:
    operation = schemathesis.openapi.from_dict(_as_served(json.loads(SPEC.read_text())))[path][
        method
    ]
    base_url = f"https://{fuzzed_hub.host}:{fuzzed_hub.service_port}"

    @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy())
    def call(case: Any) -> None:
        if path == "/twins/{deviceId}/methods" and isinstance(case.body, dict):
            case.body["connectTimeoutInSeconds"] = 0  # no device: answer at once
        response = case.call(
            base_url=base_url,
            headers={"Authorization": _authorization(fuzzed_hub)},
            verify=fuzzed_hub.ca_certificate_path,
            timeout=30,
        )
        case.validate_response(
            response, checks=[checks.not_a_server_error, checks.response_schema_conformance]
        )

    call()
