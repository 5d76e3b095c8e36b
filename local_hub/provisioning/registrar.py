"""Registering devices: attestation by symmetric key, then assignment to a hub.

Attestation looks for the registration id's individual enrollment first, then for an enrollment
group whose derived key signed the device's SAS token (scope `{idScope}/registrations/{id}`). A
token no enrollment's key signed, or a registration id nothing admits, is refused with 401; a
disabled enrollment or group ends the registration with status `disabled`, as DPS answers.

Assignment keeps a device's hub across re-registrations while that hub is still linked and still
allowed; otherwise it allocates by the enrollment's policy. It creates the identity in the hub
with the attestation's keys (for a group, the derived keys) and the enrollment's initial twin,
and records the registration state.

Re-registration follows the enrollment's `reprovisionPolicy`, as DPS does:

- `updateHubAssignment: false` ("never re-provision"): the device stays on the hub it has, even
  one the enrollment no longer names; the registration fails while that hub is not running.
- `updateHubAssignment: true` (the default): the assignment is evaluated again; a device whose
  hub is no longer linked or allowed moves to the hub the allocation policy picks. Moving
  removes the identity from the old hub (when it runs) and, with `migrateDeviceData: true` (the
  default), gives the new identity the old twin's tags and desired properties (substatus
  `deviceDataMigrated`; the device reports its own properties again); with `false`, or when the
  old hub is down so there is nothing to migrate, the enrollment's initial twin
  (`deviceDataReset`).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from local_hub import errors, tokens
from local_hub.clock import iso
from local_hub.provisioning import allocation, keys
from local_hub.provisioning.hubs import HubUnavailable, LinkedHub
from local_hub.provisioning.state import ProvisioningStore

__all__ = ["Attested", "Refused", "Registrar"]

log = logging.getLogger(__name__)


class Refused(Exception):
    """A registration request refused with a DPS status and error code."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


@dataclass(frozen=True)
class Attested:
    """Who a device proved to be, and the enrollment that admits it."""

    registration_id: str
    device_id: str
    primary_key: str
    secondary_key: str
    enrollment: dict[str, Any]
    group_id: str | None

    @property
    def enabled(self) -> bool:
        return self.enrollment.get("provisioningStatus") == "enabled"


def _signed_by(token: str, resource: str, key: str, now: float) -> bool:
    try:
        tokens.verify_sas_token(token, resource=resource, keys=[keys.decode_key(key)], now=now)
    except (errors.Unauthorized, ValueError):
        return False
    return True


class Registrar:
    """Attests and assigns registrations of one provisioning service."""

    def __init__(self, store: ProvisioningStore, hubs: Sequence[LinkedHub]) -> None:
        self._store = store
        self._hubs = list(hubs)
        self.id_scope = store.id_scope

    def attest(self, registration_id: str, token: str, now: float) -> Attested:
        """Check the device's SAS token against what admits `registration_id`.

        Raises:
            Refused: 401 when no enrollment admits it or the key is wrong.
        """
        resource = f"{self.id_scope}/registrations/{registration_id}"
        enrollment = self._store.get("enrollments", registration_id)
        if enrollment is not None:
            pair = enrollment["attestation"]["symmetricKey"]
            if not _signed_by(token, resource, pair["primaryKey"], now) and not _signed_by(
                token, resource, pair["secondaryKey"], now
            ):
                log.info(
                    "refused registration %s: the key does not match its enrollment",
                    registration_id,
                )
                raise Refused(401, 401002, "The device's key does not match its enrollment.")
            return Attested(
                registration_id, enrollment.get("deviceId") or registration_id,
                pair["primaryKey"], pair["secondaryKey"], enrollment, None,
            )  # fmt: skip
        for group in self._store.all("enrollment_groups"):
            pair = group["attestation"]["symmetricKey"]
            primary = keys.derive_device_key(pair["primaryKey"], registration_id)
            secondary = keys.derive_device_key(pair["secondaryKey"], registration_id)
            if _signed_by(token, resource, primary, now) or _signed_by(
                token, resource, secondary, now
            ):
                return Attested(
                    registration_id, registration_id, primary, secondary, group,
                    str(group["enrollmentGroupId"]),
                )  # fmt: skip
        log.info("refused registration %s: no enrollment or group admits it", registration_id)
        raise Refused(401, 401002, "No enrollment or enrollment group admits this device and key.")

    def disabled_state(self, attested: Attested) -> dict[str, Any]:
        """The registration state answered for a disabled enrollment or group."""
        state = {
            "registrationId": attested.registration_id,
            "status": "disabled",
            "errorCode": 401002,
            "errorMessage": "The enrollment or enrollment group is disabled.",
            "lastUpdatedDateTimeUtc": iso(),
        }
        if attested.group_id is not None:
            state["enrollmentGroupId"] = attested.group_id
        return state

    def _linked(self) -> dict[str, LinkedHub]:
        linked: dict[str, LinkedHub] = {}
        for hub in self._hubs:
            try:
                linked[hub.assigned_hub] = hub
            except HubUnavailable:
                log.warning("linked hub %s is not running; skipped for allocation", hub.data_dir)
        return linked

    @staticmethod
    async def _migrated_twin(
        old_hub: LinkedHub | None, previous: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The old twin's tags and desired properties, or None when the old hub is down or
        holds no twin (nothing to migrate)."""
        if old_hub is None:
            return None
        twin = await old_hub.twin(str(previous.get("deviceId")))
        if twin is None:
            return None
        desired = dict((twin.get("properties") or {}).get("desired") or {})
        desired = {k: v for k, v in desired.items() if not k.startswith("$")}
        return {"tags": twin.get("tags") or {}, "properties": {"desired": desired}}

    async def assign(self, attested: Attested, payload: Any) -> dict[str, Any]:
        """Assign the device to a hub and create its identity there; the registration state.

        A failure is recorded and returned as a state with status `failed`.
        """
        registration_id = attested.registration_id
        previous = self._store.get("registrations", registration_id)
        enrollment = attested.enrollment
        allowed = list(enrollment.get("iotHubs") or [])
        now = iso()
        state: dict[str, Any] = {
            "registrationId": registration_id,
            "createdDateTimeUtc": (previous or {}).get("createdDateTimeUtc", now),
            "lastUpdatedDateTimeUtc": now,
            "etag": secrets.token_hex(8),
            "devicePayload": payload,
            "payload": enrollment.get("returnPayload"),
        }
        if attested.group_id is not None:
            state["enrollmentGroupId"] = attested.group_id
        policy = enrollment.get("reprovisionPolicy") or {}
        update = bool(policy.get("updateHubAssignment", True))
        migrate = bool(policy.get("migrateDeviceData", True))
        kept = (
            (previous or {}).get("assignedHub")
            if (previous or {}).get("status") == "assigned"
            else None
        )
        try:
            linked = self._linked()
            twin = enrollment.get("initialTwin") or {}
            substatus = "initialAssignment"
            if kept is not None and not update:
                if kept not in linked:
                    raise HubUnavailable(
                        f"the device's hub {kept} is not running, and its enrollment's "
                        "reprovision policy keeps devices on their hub"
                    )
                hub_host = str(kept)
            elif kept in linked and (not allowed or kept in allowed):
                hub_host = str(kept)
            else:
                alloc = str(enrollment.get("allocationPolicy", "hashed"))
                hub_host = allocation.choose_hub(alloc, registration_id, list(linked), allowed)
            old_hub = linked.get(str(kept)) if kept not in (None, hub_host) else None
            if kept not in (None, hub_host):
                migrated = await self._migrated_twin(old_hub, previous or {}) if migrate else None
                substatus = "deviceDataMigrated" if migrated is not None else "deviceDataReset"
                twin = migrated if migrated is not None else twin
            created = await linked[hub_host].ensure_device(
                attested.device_id, attested.primary_key, attested.secondary_key, twin
            )
            if old_hub is not None:
                await old_hub.delete_device(str((previous or {}).get("deviceId")))
        except (allocation.NoHub, HubUnavailable) as exc:
            log.warning("registration %s failed: %s", registration_id, exc)
            state.update(status="failed", errorCode=500000, errorMessage=str(exc))
            self._store.put("registrations", registration_id, state)
            return state
        log.info(
            "registration %s assigned to %s as %s (%s)",
            registration_id, hub_host, attested.device_id, "created" if created else "existing",
        )  # fmt: skip
        state.update(
            status="assigned",
            substatus=substatus,
            assignedHub=hub_host,
            deviceId=attested.device_id,
        )
        self._store.put("registrations", registration_id, state)
        return state
