"""Hub tests: a real LocalHub on its own loopback address and data directory, reached through
the unmodified azure-iot-hub and azure-iot-device SDKs over TLS. Nothing is faked.

`swagger` checks a REST response against a definition of the service API's OpenAPI description
(shared/specs), the one azure-iot-hub was generated from: declared property names only, JSON
types, enums and date-time formats, recursively through `$ref`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

_SPEC_PATH = Path(__file__).parents[3] / "shared/specs/iothub-service-2021-04-12.swagger.json"
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
}


class Swagger:
    """The definitions of the IoT Hub service API, as a checker."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.definitions: dict[str, Any] = spec["definitions"]

    def check(self, value: Any, definition: str) -> None:
        """Fail the test with every way `value` departs from `definition`."""
        problems: list[str] = []
        self._check(value, {"$ref": f"#/definitions/{definition}"}, definition, problems)
        assert not problems, "\n".join(problems)

    def _check(self, value: Any, schema: dict[str, Any], where: str, problems: list[str]) -> None:
        if "$ref" in schema:
            schema = self.definitions[schema["$ref"].rsplit("/", 1)[1]]
        if value is None:  # the SDK's models take null for any optional property
            return
        kind = schema.get("type", "object")
        if kind == "object":
            declared = schema.get("properties")
            if declared is None:  # free-form JSON (tags, desired, a method payload)
                return
            if not isinstance(value, dict):
                problems.append(f"{where} is {type(value).__name__}, not an object")
                return
            for name in schema.get("required", []):
                if name not in value:
                    problems.append(f"{where} lacks required {name!r}")
            for name, item in value.items():
                if name not in declared:
                    problems.append(f"{where}.{name} is not declared")
                else:
                    self._check(item, declared[name], f"{where}.{name}", problems)
            return
        expected = _TYPES[kind]
        if not isinstance(value, expected) or (kind != "boolean" and isinstance(value, bool)):
            problems.append(f"{where} is {type(value).__name__}, not {kind}")
            return
        if "enum" in schema and value not in schema["enum"]:
            problems.append(f"{where} is {value!r}, not one of {schema['enum']}")
        if schema.get("format") == "date-time":
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                problems.append(f"{where} is {value!r}, not an ISO-8601 time")
        if kind == "array":
            for i, item in enumerate(value):
                self._check(item, schema.get("items", {}), f"{where}[{i}]", problems)


@pytest.fixture(scope="session")
def swagger() -> Swagger:
    """The service API's definitions (skips when shared/specs is not beside this checkout)."""
    if not _SPEC_PATH.exists():
        pytest.skip("shared/specs is not beside this checkout")
    return Swagger(json.loads(_SPEC_PATH.read_text()))
