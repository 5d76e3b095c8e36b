"""Key rotation: give each device a new symmetric key without ever locking one out.

Written against `patterns.api` and the contract models alone, as a user's pattern would be.

An identity has two keys, and the device connects with one of them. Its agent reports the
fingerprint of that key (`reported.keyRotation.fingerprint`) at every connect, so the back end
always knows which key is in use and never removes it. The steps:

1. `apply`: read the identity (keys and etag) and the device's reported fingerprint. The key in
   use (primary or secondary) is kept as **primary**, a newly generated key becomes the
   **secondary** (one etag-guarded update); then the new key goes to the device in the
   `rotateKey` direct method, never through the twin. The device saves it before answering.
   A device that is offline, or refuses, keeps working: its key is still the primary.
2. The device reconnects with the new key and reports `rotated` with the new key's fingerprint
   and this attempt's tag (or `refused`, back on its old key).
3. `outcome`: once the device reports the new key in use, it is **promoted**: primary = the new
   key, secondary = a fresh random key nobody holds (one etag-guarded update), so the old key is
   refused from then on. The device confirmed before its old key was revoked.

Every step is derived from the hub's state (identity keys and the reported section), so a
controller that stops anywhere and starts again converges: a promotion already made shows as
the reported fingerprint matching the primary; one not made yet is made. A controller stopped
between claiming a device and delivering its key leaves the attempt in progress until the
campaign's timeout retries it; each try generates a new key and may replace an undelivered one,
never the one in use. A method that times out (the device may have saved the key and lost power)
is left in progress: the device's next boot tries the saved key and reports.

`fingerprints` returns the fingerprints of a device's keys, for a check from Python.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError

from patterns import api
from patterns.contracts import key_rotation
from twin_manager import DeviceNotOnline, HubError, MethodTimeout, PreconditionFailed, TwinManager

__all__ = ["PATTERN", "KeyRotation", "KeyRotationPattern", "fingerprints", "new_key"]


class KeyRotation(api.Params):
    """Args:
    key_bytes: the size of the new keys (IoT Hub takes 16 to 64 bytes).
    method_timeout: seconds the device has to answer `rotateKey`.
    """

    kind: Literal["keyRotation"] = "keyRotation"
    key_bytes: int = Field(default=32, ge=16, le=64)
    method_timeout: int = Field(default=30, ge=5, le=300)


def new_key(size: int = 32) -> str:
    """A fresh random symmetric key, base64, as IoT Hub generates them."""
    return base64.b64encode(secrets.token_bytes(size)).decode()


def _reported(reported: Mapping[str, Any]) -> key_rotation.KeyRotationReported | None:
    try:
        return key_rotation.KeyRotationReported.model_validate(reported.get(key_rotation.SECTION))
    except ValidationError:
        return None


class KeyRotationPattern:
    kind = "keyRotation"
    params = KeyRotation
    description = (
        "Give devices new symmetric keys: set as secondary, sent by direct method, promoted to "
        "primary once the device reconnects with it (the old key is then refused)."
    )

    def apply(self, params: KeyRotation, device: api.Device) -> api.Verdict:
        fleet = device.fleet
        identity = fleet.devices.get(device.device_id)
        twin = fleet.twins.get(device.device_id)  # the freshest word on the key in use
        reported = _reported(twin.reported)
        if reported is None:
            return api.Verdict.failed(
                "the device reports no key fingerprint (reported.keyRotation): it runs no "
                "key-rotation handler, or has not connected since it got one"
            )
        if identity.primary_key is None or identity.secondary_key is None or identity.etag is None:
            return api.Verdict.failed("the identity has no symmetric keys to rotate")
        keys = {
            key_rotation.fingerprint(k): k for k in (identity.secondary_key, identity.primary_key)
        }
        in_use = keys.get(reported.fingerprint)  # the device's key stays, as primary
        if in_use is None:
            return api.Verdict.failed(
                f"the device reports a key (fingerprint {reported.fingerprint}) that the hub "
                "no longer holds; it cannot connect with it until it is given a valid key"
            )
        key = new_key(params.key_bytes)
        fleet.devices.set_keys(device.device_id, in_use, key, if_match=identity.etag)
        request = key_rotation.KeyRotationRequest(key=key, campaign_id=device.attempt.tag)
        try:
            result = fleet.methods.invoke(device.device_id, key_rotation.METHOD, request.wire(),
                                  timeout=params.method_timeout)  # fmt: skip
        except MethodTimeout:
            return api.Verdict.in_progress()  # it may have saved the key: its report decides
        except DeviceNotOnline:
            return api.Verdict.failed(
                f"{key_rotation.METHOD}: DeviceNotOnline; the device keeps its current key"
            )
        except HubError as exc:
            return api.Verdict.failed(f"{key_rotation.METHOD}: {exc.error_code or exc.status}")
        if result.status != 200:
            detail = result.payload.get("error") if isinstance(result.payload, dict) else None
            return api.Verdict.failed(
                f"{key_rotation.METHOD} answered {result.status}"
                + (f": {detail}" if detail else "")
            )
        return api.Verdict.in_progress()

    def outcome(self, params: KeyRotation, device: api.Device) -> api.Verdict:
        reported = _reported(device.reported)
        if reported is None or reported.campaign_id != device.attempt.tag:
            return api.Verdict.in_progress()
        status = reported.status
        if status == key_rotation.KeyRotationStatus.ERROR:
            return api.Verdict.failed(f"the device could not take the new key: {reported.error}")
        if status == key_rotation.KeyRotationStatus.REFUSED:
            return api.Verdict.failed("the hub refused the new key; the device kept its old one")
        if status != key_rotation.KeyRotationStatus.ROTATED:
            return api.Verdict.in_progress()
        if reported.fingerprint != reported.requested_fingerprint:
            return api.Verdict.failed("the device went back to its old key after rotating")
        identity = device.fleet.devices.get(device.device_id)
        primary, secondary = identity.primary_key or "", identity.secondary_key or ""
        if reported.fingerprint == key_rotation.fingerprint(primary):
            return api.Verdict.succeeded()  # promoted already (by us, before a restart)
        if reported.fingerprint != key_rotation.fingerprint(secondary) or identity.etag is None:
            return api.Verdict.failed("the hub no longer holds the key the device rotated to")
        try:  # promote: the device's new key becomes primary; the old one is revoked
            device.fleet.devices.set_keys(device.device_id, secondary, new_key(params.key_bytes),
                                  if_match=identity.etag)  # fmt: skip
        except PreconditionFailed:
            return api.Verdict.in_progress()  # changed meanwhile: judge again next tick
        return api.Verdict.succeeded()

    def rollback(self, params: KeyRotation) -> None:
        return None


def fingerprints(fleet: TwinManager, device_id: str) -> tuple[str, str]:
    """The fingerprints of a device's (primary, secondary) keys, to compare with what it
    reports in `reported.keyRotation.fingerprint`."""
    identity = fleet.devices.get(device_id)
    return (
        key_rotation.fingerprint(identity.primary_key or ""),
        key_rotation.fingerprint(identity.secondary_key or ""),
    )


PATTERN = KeyRotationPattern()
