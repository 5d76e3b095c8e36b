"""What the registry tells its listeners after a change is committed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ConnectionChanged",
    "DesiredPatched",
    "DeviceCreated",
    "DeviceDeleted",
    "DeviceStatusChanged",
    "ReportedPatched",
    "TagsPatched",
    "TwinEvent",
]


@dataclass(frozen=True)
class DesiredPatched:
    """Desired properties changed; `patch` holds `$version` and is what the device receives."""

    device_id: str
    patch: dict[str, Any]


@dataclass(frozen=True)
class ReportedPatched:
    """The device reported a patch, now at `version`."""

    device_id: str
    patch: dict[str, Any]
    version: int


@dataclass(frozen=True)
class ConnectionChanged:
    """The device connected or disconnected."""

    device_id: str
    connected: bool


@dataclass(frozen=True)
class TagsPatched:
    """The service changed the twin's tags."""

    device_id: str


@dataclass(frozen=True)
class DeviceCreated:
    """A new identity (with an empty twin) was registered."""

    device_id: str


@dataclass(frozen=True)
class DeviceDeleted:
    """The identity (and its twin) is gone."""

    device_id: str


@dataclass(frozen=True)
class DeviceStatusChanged:
    """The identity was enabled or disabled."""

    device_id: str
    status: str


TwinEvent = (
    DesiredPatched | ReportedPatched | TagsPatched | ConnectionChanged | DeviceCreated
    | DeviceDeleted | DeviceStatusChanged
)  # fmt: skip
