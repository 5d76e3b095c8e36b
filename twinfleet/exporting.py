"""Exporting a hub's devices as device file rows (see `devicefiles`): one paged query for the
twins (status, tags, desired properties), and, only when keys are asked for, each identity."""

from __future__ import annotations

from collections.abc import Iterator

from twin_manager import TwinManager
from twinfleet.devicefiles import DeviceRow

__all__ = ["export_rows"]


def export_rows(
    fleet: TwinManager, condition: str | None = None, *, include_keys: bool = False
) -> Iterator[DeviceRow]:
    """The rows of every device `condition` selects (every device when None), by device id.

    Raises:
        InvalidQuery: the condition is not valid (before any request).
    """
    if condition is not None:
        fleet.validate_condition(condition)
    for twin in fleet.query_twins(condition, page_size=1000):
        keys: dict[str, str | None] = {}
        if include_keys:
            device = fleet.get_device(twin.device_id)
            keys = {"primaryKey": device.primary_key, "secondaryKey": device.secondary_key}
        yield DeviceRow.model_validate(
            {"deviceId": twin.device_id, "status": twin.status or "enabled", "tags": twin.tags,
             "desired": twin.desired, **keys}
        )  # fmt: skip
