"""Managing enrollments and enrollment groups in DPS's REST shapes.

An individual enrollment (`IndividualEnrollment`) admits one registration id; an enrollment group
(`EnrollmentGroup`) admits every device that signs with a key derived from the group's key. Both
carry a symmetric-key attestation, a provisioning status (`enabled` or `disabled`), an allocation
policy (`hashed` or `static`), the hubs they may assign to (`iotHubs`, by assigned-hub host),
the initial twin (`tags` and `properties.desired`) a new identity gets, and the reprovision
policy (`reprovisionPolicy`: `updateHubAssignment`, `migrateDeviceData`; both true unless given,
as in DPS; see `registrar`). `returnPayload` (a local
extension standing in for a custom allocation's answer) is the `payload` a device is given back;
the payload a device sends is kept in its registration state as `devicePayload`.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from local_hub.clock import iso
from local_hub.provisioning import keys
from local_hub.provisioning.state import ProvisioningStore

__all__ = ["ALLOCATION_POLICIES", "EnrollmentError", "Enrollments"]

ALLOCATION_POLICIES = ("hashed", "static")
_GROUPS = "enrollment_groups"  # the store tables
_ENROLLMENTS = "enrollments"
_ID = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,127}$")


class EnrollmentError(ValueError):
    """A request about enrollments was refused; `status` is the HTTP status DPS would answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _check_id(kind: str, value: str) -> None:
    if not _ID.match(value):
        raise EnrollmentError(
            f"{kind} {value!r} is invalid: use 1 to 128 lower-case letters, digits and . _ : -"
            ", starting with a letter or digit."
        )


def _initial_twin(twin: Any) -> dict[str, Any]:
    if twin is None:
        return {"tags": {}, "properties": {"desired": {}}}
    if not isinstance(twin, dict):
        raise EnrollmentError("The initial twin must be a JSON object.")
    unknown = set(twin) - {"tags", "properties"}
    if unknown:
        raise EnrollmentError(
            f"The initial twin may hold only tags and properties, not {sorted(unknown)}."
        )
    tags = twin.get("tags", {})
    properties = twin.get("properties", {})
    if not isinstance(tags, dict) or not isinstance(properties, dict):
        raise EnrollmentError("The initial twin's tags and properties must be JSON objects.")
    if set(properties) - {"desired"}:
        raise EnrollmentError("The initial twin's properties may hold only desired.")
    desired = properties.get("desired", {})
    if not isinstance(desired, dict):
        raise EnrollmentError("The initial twin's desired properties must be a JSON object.")
    return {"tags": tags, "properties": {"desired": desired}}


def _attestation(primary_key: str | None, secondary_key: str | None) -> dict[str, Any]:
    chosen = {
        "primaryKey": primary_key or keys.new_key(),
        "secondaryKey": secondary_key or keys.new_key(),
    }
    for name, value in chosen.items():
        try:
            raw = keys.decode_key(value)
        except ValueError:
            raise EnrollmentError(f"The {name} is not valid base64.") from None
        if not 16 <= len(raw) <= 64:
            raise EnrollmentError(f"The {name} must decode to 16 to 64 bytes.")
    return {"type": "symmetricKey", "symmetricKey": chosen}


def _reprovision_policy(policy: Any) -> dict[str, bool]:
    if policy is None:
        return {"updateHubAssignment": True, "migrateDeviceData": True}
    if not isinstance(policy, dict) or set(policy) - {"updateHubAssignment", "migrateDeviceData"}:
        raise EnrollmentError(
            "The reprovisionPolicy must be an object with updateHubAssignment and "
            "migrateDeviceData."
        )
    chosen = {"updateHubAssignment": True, "migrateDeviceData": True, **policy}
    if not all(isinstance(value, bool) for value in chosen.values()):
        raise EnrollmentError(
            "The reprovisionPolicy's updateHubAssignment and migrateDeviceData must be true or "
            "false."
        )
    return chosen


def _common(
    allocation: str, iot_hubs: list[str] | None, initial_twin: Any, enabled: bool, payload: Any,
    reprovision: Any = None,
) -> dict[str, Any]:  # fmt: skip
    if allocation not in ALLOCATION_POLICIES:
        raise EnrollmentError(
            f"The allocation policy {allocation!r} is unknown: "
            f"use one of {', '.join(ALLOCATION_POLICIES)}."
        )
    now = iso()
    return {
        "provisioningStatus": "enabled" if enabled else "disabled",
        "allocationPolicy": allocation,
        "iotHubs": list(iot_hubs or []),
        "initialTwin": _initial_twin(initial_twin),
        "returnPayload": payload,
        "reprovisionPolicy": _reprovision_policy(reprovision),
        "createdDateTimeUtc": now,
        "lastUpdatedDateTimeUtc": now,
        "etag": secrets.token_hex(8),
    }


class Enrollments:
    """Create, read and delete enrollments and groups in a provisioning store."""

    def __init__(self, store: ProvisioningStore) -> None:
        self._store = store

    def _put_new(
        self, table: str, noun: str, key: str, doc: dict[str, Any], *, replace: bool
    ) -> dict[str, Any]:
        """Store a new `doc` under `key`; with `replace`, over an existing one (keeping its
        creation time). EnrollmentError (409) when it exists and `replace` is not given."""
        if replace:
            old = self._store.get(table, key)
            if old is not None:
                doc["createdDateTimeUtc"] = old["createdDateTimeUtc"]
            self._store.put(table, key, doc)
            return doc
        if not self._store.insert(table, key, doc):
            raise EnrollmentError(f"The {noun} {key!r} already exists.", 409)
        return doc

    def _get(self, table: str, noun: str, key: str) -> dict[str, Any]:
        doc = self._store.get(table, key)
        if doc is None:
            raise EnrollmentError(f"There is no {noun} {key!r}.", 404)
        return doc

    def _delete(self, table: str, noun: str, key: str) -> None:
        if not self._store.delete(table, key):
            raise EnrollmentError(f"There is no {noun} {key!r}.", 404)

    # -- groups ------------------------------------------------------------------------------

    def create_group(
        self,
        group_id: str,
        *,
        allocation: str = "hashed",
        iot_hubs: list[str] | None = None,
        initial_twin: Any = None,
        primary_key: str | None = None,
        secondary_key: str | None = None,
        enabled: bool = True,
        payload: Any = None,
        reprovision: Any = None,
        replace: bool = False,
    ) -> dict[str, Any]:
        """A new symmetric-key enrollment group (its keys made unless given); with `replace`,
        it takes the place of an existing one in one write.

        Raises:
            EnrollmentError: a bad argument (400) or the group exists (409).
        """
        _check_id("The enrollment group id", group_id)
        doc = {
            "enrollmentGroupId": group_id,
            "attestation": _attestation(primary_key, secondary_key),
            **_common(allocation, iot_hubs, initial_twin, enabled, payload, reprovision),
        }
        return self._put_new(_GROUPS, "enrollment group", group_id, doc, replace=replace)

    def groups(self) -> list[dict[str, Any]]:
        return self._store.all(_GROUPS)

    def group(self, group_id: str) -> dict[str, Any]:
        """Raises EnrollmentError (404) when there is no such group."""
        return self._get(_GROUPS, "enrollment group", group_id)

    def delete_group(self, group_id: str) -> None:
        self._delete(_GROUPS, "enrollment group", group_id)

    def set_group_enabled(self, group_id: str, enabled: bool) -> dict[str, Any]:
        """Enable or disable an enrollment group (a disabled group's devices are refused)."""
        doc = self.group(group_id)
        doc.update(
            provisioningStatus="enabled" if enabled else "disabled", lastUpdatedDateTimeUtc=iso()
        )
        doc["etag"] = secrets.token_hex(8)
        self._store.put(_GROUPS, group_id, doc)
        return doc

    # -- individual enrollments --------------------------------------------------------------

    def create(
        self,
        registration_id: str,
        *,
        device_id: str | None = None,
        allocation: str = "hashed",
        iot_hubs: list[str] | None = None,
        initial_twin: Any = None,
        primary_key: str | None = None,
        secondary_key: str | None = None,
        enabled: bool = True,
        payload: Any = None,
        reprovision: Any = None,
        replace: bool = False,
    ) -> dict[str, Any]:
        """A new symmetric-key individual enrollment (its keys made unless given); with
        `replace`, it takes the place of an existing one in one write.

        Raises:
            EnrollmentError: a bad argument (400) or the enrollment exists (409).
        """
        _check_id("The registration id", registration_id)
        doc: dict[str, Any] = {
            "registrationId": registration_id,
            "deviceId": device_id or registration_id,
            "attestation": _attestation(primary_key, secondary_key),
            **_common(allocation, iot_hubs, initial_twin, enabled, payload, reprovision),
        }
        return self._put_new(_ENROLLMENTS, "enrollment", registration_id, doc, replace=replace)

    def enrollments(self) -> list[dict[str, Any]]:
        return self._store.all(_ENROLLMENTS)

    def enrollment(self, registration_id: str) -> dict[str, Any]:
        return self._get(_ENROLLMENTS, "enrollment", registration_id)

    def delete(self, registration_id: str) -> None:
        self._delete(_ENROLLMENTS, "enrollment", registration_id)

    # -- registration states -----------------------------------------------------------------

    def registrations(self) -> list[dict[str, Any]]:
        return self._store.all("registrations")
