"""Retire: take a device out of service for good, usable as the last step of a campaign (after
a factory reset, say), or alone (`twinfleet device retire`).

In this order, each step safe to repeat, so a retry or a second run finishes what one began:

1. the tag `twinfleetRetired` records who, when and why: from then on the device is excluded
   from every campaign's target (see `patterns.campaigns.targeting`);
2. the identity is disabled: the hub drops its connection and refuses it from then on;
3. if the fleet's devices provision through a DPS (`fleet.provisioning`), the device's
   registration id (its device id) is blocked there: its individual enrollment disabled, or, for
   a member of an enrollment group, a disabled individual enrollment made for it, so it can never
   provision itself back in;
4. unless `keep_twin`, the twin (with the identity, keys left out, and the retirement record) is
   archived to the artifacts store as `retired/<device>-<time>.json`, and only then is the
   identity deleted. A hub with no artifacts store (Azure IoT Hub) fails this step, and the
   device stays, disabled, rather than be deleted unarchived.

The verdict's note (who, when, why and what was done) goes to the campaign's log.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from patterns import api
from patterns.contracts import times
from twin_manager import DeviceNotFound, HubError

__all__ = [
    "ARCHIVE_CONTAINER",
    "PATTERN",
    "RETIRED_TAG",
    "Retire",
    "RetirePattern",
    "archive_name",
]

RETIRED_TAG = "twinfleetRetired"
ARCHIVE_CONTAINER = "retired"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


class Retire(api.Params):
    """Retire devices: why, who asks, and whether to keep the disabled twin."""

    kind: Literal["retire"] = "retire"
    reason: str = Field(min_length=1, max_length=500)
    by: str = Field(default="twinfleet", min_length=1, max_length=128)
    keep_twin: bool = False
    provisioning: Literal["auto", "required"] = "auto"


def archive_name(device_id: str, moment: float) -> str:
    """The archive blob of a device retired at `moment`: its id (made safe for a blob name,
    with a hash when that changed it) and the time."""
    safe = _SAFE.sub("_", device_id)[:120]
    if safe != device_id:
        safe += "-" + hashlib.sha256(device_id.encode()).hexdigest()[:8]
    stamp = datetime.fromtimestamp(moment, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{safe}-{stamp}.json"


class RetirePattern:
    kind = "retire"
    params = Retire
    description = "Take devices out of service for good (disable, block provisioning, archive)."

    def apply(self, params: Retire, device: api.Device) -> api.Verdict:
        fleet, device_id = device.fleet, device.device_id
        now = datetime.now(UTC).timestamp()
        record = {"at": times.iso(now), "by": params.by, "reason": params.reason,
                  "step": device.attempt.step_id}  # fmt: skip
        done: list[str] = []
        try:
            twin = fleet.twins.get(device_id)
            if RETIRED_TAG not in twin.tags:
                twin = fleet.twins.update_tags(device_id, {RETIRED_TAG: record})
            else:
                record = dict(twin.tags[RETIRED_TAG])
            fleet.devices.set_enabled(device_id, False)
            done.append("disabled")
        except DeviceNotFound:
            return api.Verdict.succeeded(note=f"{device_id}: already gone from the hub")
        except HubError as exc:
            return api.Verdict.failed(f"retire: {exc.error_code or exc.status}: {exc}")
        dps = fleet.provisioning
        if dps is None and params.provisioning == "required":
            return api.Verdict.failed(
                "retire: no provisioning service is configured (give --dps-dir), so the device "
                "could provision itself back; it is disabled, not yet retired"
            )
        if dps is not None:
            try:
                blocked = dps.block(device_id)
            except HubError as exc:
                return api.Verdict.failed(f"retire: blocking its registration failed: {exc}")
            done.append({"enrollment": "enrollment disabled", "none": "not enrolled in the DPS",
                         "group": f"blocked in group {blocked.group_id}"}[blocked.how])  # fmt: skip
        if not params.keep_twin:
            identity = fleet.devices.get(device_id)
            archive = {
                "retirement": record,
                "identity": identity.model_dump(mode="json", by_alias=True,
                                                exclude={"primary_key", "secondary_key"}),
                "twin": twin.to_json(),
            }  # fmt: skip
            name = archive_name(device_id, now)
            try:
                fleet.artifact_store().put_blob(
                    ARCHIVE_CONTAINER, name, json.dumps(archive, indent=2).encode()
                )
            except HubError as exc:
                return api.Verdict.failed(f"retire: archiving the twin failed, so the identity "
                                          f"was kept (disabled): {exc}")  # fmt: skip
            done.append(f"twin archived to {ARCHIVE_CONTAINER}/{name}")
            try:
                fleet.devices.delete(device_id)
            except DeviceNotFound:
                pass
            done.append("identity deleted")
        note = (f"{device_id} retired by {record['by']} at {record['at']}: {record['reason']} "
                f"({'; '.join(done)})")  # fmt: skip
        return api.Verdict.succeeded(note=note)

    def outcome(self, params: Retire, device: api.Device) -> api.Verdict:
        try:
            twin = device.fleet.twins.get(device.device_id)
        except DeviceNotFound:
            return api.Verdict.succeeded()
        if RETIRED_TAG in twin.tags and twin.status == "disabled":
            return api.Verdict.succeeded()
        return api.Verdict.in_progress()

    def rollback(self, params: Retire) -> None:
        return None


PATTERN = RetirePattern()
