"""Exporting a hub's devices as device file rows (see `devicefiles`): one paged query for the
twins (status, tags, desired properties) and, only when keys are asked for, the keys.

Keys are not in twins. On a hub with an artifacts store (a local hub) they come from one export
job into a private container of its store (removed afterwards), so 10,000 devices cost one job,
not 10,000 identity reads; elsewhere (Azure IoT Hub) each identity is read, as is any device
registered after that job ran.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

from twin_manager import Conflict, HubError, TwinManager
from twinfleet.devicefiles import DeviceRow

__all__ = ["JOB_TIMEOUT", "export_rows"]

log = logging.getLogger(__name__)

JOB_TIMEOUT = 3600.0
Keys = dict[str, tuple[str | None, str | None]]


def _keys_by_export_job(fleet: TwinManager) -> Keys:
    """Every device's keys from one export job; empty when the hub has no artifacts store."""
    store = fleet.artifact_store()
    container = f"twinfleet-export-{uuid.uuid4().hex[:12]}"
    try:
        url = store.container_url(container, permissions="w", ttl=int(JOB_TIMEOUT))
    except HubError as exc:
        log.info("no export job for the keys (%s); reading each identity instead", exc)
        return {}
    try:
        job = fleet.jobs.export_devices(url, exclude_keys=False)
    except Conflict as exc:  # another import or export job is running: do without
        log.info("no export job for the keys (%s); reading each identity instead", exc)
        return {}
    done = fleet.jobs.wait_import_export(job.job_id, JOB_TIMEOUT, poll=0.2)
    if done.status != "completed":
        raise HubError(f"The export job for the devices' keys {done.status}: "
                       f"{done.failure_reason or 'no reason given'}.")  # fmt: skip
    name = done.output_blob_name or "devices.txt"
    try:
        keys: Keys = {}
        for line in store.get_blob(container, name).splitlines():
            entry = json.loads(line)
            symmetric = (entry.get("authentication") or {}).get("symmetricKey") or {}
            keys[entry["id"]] = (symmetric.get("primaryKey"), symmetric.get("secondaryKey"))
        return keys
    finally:
        store.delete_blob(container, name)


def export_rows(
    fleet: TwinManager, condition: str | None = None, *, include_keys: bool = False
) -> Iterator[DeviceRow]:
    """The rows of every device `condition` selects (every device when None), by device id.

    Raises:
        InvalidQuery: the condition is not valid (before any request).
    """
    if condition is not None:
        fleet.queries.validate_condition(condition)
    keys = _keys_by_export_job(fleet) if include_keys else {}
    for twin in fleet.queries.twins(condition, page_size=1000):
        pair: dict[str, str | None] = {}
        if include_keys:
            primary, secondary = keys.get(twin.device_id) or (None, None)
            if primary is None:
                device = fleet.devices.get(twin.device_id)
                primary, secondary = device.primary_key, device.secondary_key
            pair = {"primaryKey": primary, "secondaryKey": secondary}
        yield DeviceRow.model_validate(
            {"deviceId": twin.device_id, "status": twin.status or "enabled", "tags": twin.tags,
             "desired": twin.desired, **pair}
        )  # fmt: skip
