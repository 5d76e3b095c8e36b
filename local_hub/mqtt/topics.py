"""IoT Hub's MQTT topics: what a device publishes and subscribes to, parsed and built."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

__all__ = [
    "DESIRED_FILTER",
    "METHODS_FILTER",
    "TWIN_RESPONSE_FILTER",
    "MethodResponse",
    "ReportedPatch",
    "Telemetry",
    "TwinGet",
    "allowed_filter",
    "desired_patch_topic",
    "method_request_topic",
    "parse_device_topic",
    "twin_response_topic",
]

TWIN_RESPONSE_FILTER = "$iothub/twin/res/#"
DESIRED_FILTER = "$iothub/twin/PATCH/properties/desired/#"
METHODS_FILTER = "$iothub/methods/POST/#"


@dataclass(frozen=True)
class TwinGet:
    rid: str


@dataclass(frozen=True)
class ReportedPatch:
    rid: str


@dataclass(frozen=True)
class MethodResponse:
    rid: str
    status: int


@dataclass(frozen=True)
class Telemetry:
    properties: dict[str, str]


DeviceTopic = TwinGet | ReportedPatch | MethodResponse | Telemetry


def _properties(query: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(query, keep_blank_values=True))


def parse_device_topic(topic: str, device_id: str) -> DeviceTopic | None:
    """What a device's PUBLISH topic asks for, or None for a topic IoT Hub does not serve."""
    path, _, query = topic.partition("?")
    if path == "$iothub/twin/GET/":
        rid = _properties(query).get("$rid")
        return TwinGet(rid) if rid else None
    if path == "$iothub/twin/PATCH/properties/reported/":
        rid = _properties(query).get("$rid")
        return ReportedPatch(rid) if rid else None
    if path.startswith("$iothub/methods/res/"):
        status = path[len("$iothub/methods/res/") :].rstrip("/")
        rid = _properties(query).get("$rid")
        if not rid or not re.fullmatch(r"-?[0-9]{1,9}", status):
            return None
        return MethodResponse(rid, int(status))
    prefix = f"devices/{device_id}/messages/events/"
    if topic.startswith(prefix):
        return Telemetry(_properties(topic[len(prefix) :]))
    return None


def allowed_filter(topic_filter: str, device_id: str) -> bool:
    """True for the topic filters IoT Hub lets a device subscribe to."""
    return topic_filter in (
        TWIN_RESPONSE_FILTER,
        DESIRED_FILTER,
        METHODS_FILTER,
        f"devices/{device_id}/messages/devicebound/#",
    )


def twin_response_topic(status: int, rid: str, version: int | None = None) -> str:
    topic = f"$iothub/twin/res/{status}/?$rid={rid}"
    return topic + (f"&$version={version}" if version is not None else "")


def desired_patch_topic(version: int) -> str:
    return f"$iothub/twin/PATCH/properties/desired/?$version={version}"


def method_request_topic(method: str, rid: str) -> str:
    return f"$iothub/methods/POST/{urllib.parse.quote(method, safe='')}/?$rid={rid}"
