"""Bulk registry operations: `POST /devices` with up to 100 `ExportImportDevice` entries.

Each entry names a device (`id`), an `importMode` and what to set. Entries are applied one by one,
in order, each on its own: one that fails (a taken id, a stale `eTag`, an invalid key) is reported
in the result's `errors` and leaves the others alone (an entry is validated whole before it
writes). The request's changes commit as one SQLite transaction (one fsync, not one a device), so
every applied change is durable when the answer is sent. The modes, as IoT Hub defines them:

- `create`: register a new device; an existing id is an error (`DeviceAlreadyExists`).
- `update`: overwrite an existing device's status and keys, whatever its etag.
- `updateIfMatchETag`: the same, only when `eTag` is the device's current etag.
- `delete`: delete an existing device, whatever its etag.
- `deleteIfMatchETag`: the same, only when `eTag` is current.
- `updateTwin`, `updateTwinIfMatchETag` (against `twinETag`): merge `tags` and
  `properties.desired` into an existing device's twin.

`create` and the `update` modes also merge the entry's `tags` and desired properties into the
twin; when that part is refused after the identity was written, the device stays registered and a
`DeviceRegisteredWithoutTwin` warning says why, as IoT Hub does.

The answer is a `BulkRegistryOperationResult`: 200 with `isSuccessful: true` when every entry
succeeded, else 400 with `isSuccessful: false` and one error per failed entry (`deviceId`,
`errorCode`, `errorStatus`, `operation`); the SDK reads both. A request that is not a list of 1 to
100 objects with distinct ids is refused whole, before anything changes, with a 400 whose result
holds one error naming the problem (`TooManyDevices`, `DeviceDefinedMultipleTimes`,
`ArgumentInvalid`): the SDK decodes every 400 as a result, so IoT Hub's usual error body would
reach the caller as an empty one.
"""

from __future__ import annotations

import logging
from typing import Any

from local_hub import errors, registry

__all__ = ["IMPORT_MODES", "MAX_DEVICES", "MODES", "apply", "apply_entry"]

log = logging.getLogger(__name__)

MAX_DEVICES = 100
MODES = (
    "create",
    "update",
    "updateIfMatchETag",
    "delete",
    "deleteIfMatchETag",
    "updateTwin",
    "updateTwinIfMatchETag",
)
# Import jobs also take these (`createOrUpdate` is their default), as IoT Hub's do.
IMPORT_MODES = (*MODES, "createOrUpdate", "createOrUpdateIfMatchETag")
_IDENTITY_FIELDS = ("status", "statusReason", "authentication", "capabilities")


class BatchRefused(errors.BadRequest):
    """The request as a whole is malformed; nothing was changed."""

    def __init__(self, message: str, code_name: str, device_id: str | None = None) -> None:
        super().__init__(message)
        self.code_name = code_name
        self.device_id = device_id


def _entries(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, list):
        raise BatchRefused(
            "The body must be a JSON array of ExportImportDevice objects.", "ArgumentInvalid"
        )
    if not 1 <= len(body) <= MAX_DEVICES:
        raise BatchRefused(
            f"A bulk registry operation takes 1 to {MAX_DEVICES} devices, not {len(body)}; "
            "split the list into several calls.",
            "TooManyDevices" if body else "ArgumentInvalid",
        )
    seen: set[str] = set()
    for index, entry in enumerate(body):
        if not isinstance(entry, dict):
            raise BatchRefused(
                f"Entry {index} of the list is not a JSON object.", "ArgumentInvalid"
            )
        device_id = entry.get("id")
        if isinstance(device_id, str):
            if device_id in seen:
                raise BatchRefused(
                    f"Device {device_id!r} appears more than once; a bulk operation may name "
                    "each device only once.",
                    "DeviceDefinedMultipleTimes",
                    device_id,
                )
            seen.add(device_id)
    return body


def apply(hub_registry: registry.Registry, body: Any) -> tuple[int, dict[str, Any]]:
    """Apply a bulk registry request; returns the HTTP status and the result body.

    A malformed request (not a list of 1 to 100 objects with distinct ids) changes nothing and is
    answered 400 with one error saying why.
    """
    failures: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    try:
        entries = _entries(body)
    except BatchRefused as refused:
        # The SDK reads any 400 as a BulkRegistryOperationResult: say why in that shape.
        failure = {"deviceId": refused.device_id, "errorCode": refused.code_name,
                   "errorStatus": refused.message}  # fmt: skip
        return 400, {"isSuccessful": False, "errors": [failure], "warnings": []}
    with hub_registry.batch():  # one commit for the request: durable before the answer
        for entry in entries:
            device_id = entry.get("id")
            mode = entry.get("importMode")
            try:
                warning = apply_entry(hub_registry, entry, mode)
            except errors.HubError as exc:
                failures.append(
                    {
                        "deviceId": device_id,
                        "errorCode": exc.code_name,
                        "errorStatus": exc.message,
                        "operation": mode,
                    }
                )
                continue
            if warning is not None:
                warnings.append(
                    {
                        "deviceId": device_id,
                        "warningCode": "DeviceRegisteredWithoutTwin",
                        "warningStatus": warning,
                    }
                )
    log.info("bulk registry operation: %d devices, %d failed", len(entries), len(failures))
    result = {"isSuccessful": not failures, "errors": failures, "warnings": warnings}
    return (400 if failures else 200), result


def apply_entry(
    hub_registry: registry.Registry,
    entry: dict[str, Any],
    mode: Any,
    modes: tuple[str, ...] = MODES,
) -> str | None:
    """Apply one `ExportImportDevice` entry in `mode` (one of `modes`); returns a warning for a
    twin part that was refused, else None.

    Raises:
        HubError: the entry was refused (nothing of it changed).
    """
    device_id = entry.get("id")
    if not isinstance(device_id, str) or not device_id:
        raise errors.BadRequest("The entry has no device id ('id').")
    if mode not in modes:
        raise errors.BadRequest(f"importMode {str(mode)[:40]!r} is not one of {', '.join(modes)}.")
    if mode.startswith("createOrUpdate"):
        exists = hub_registry.get_device(device_id) is not None
        mode = mode.replace("createOrUpdate", "update") if exists else "create"
    if mode in ("delete", "deleteIfMatchETag"):
        hub_registry.delete_device(device_id, _etag(entry, "eTag", mode))
        return None
    if mode in ("updateTwin", "updateTwinIfMatchETag"):
        hub_registry.update_twin(device_id, _twin_patch(entry), _etag(entry, "twinETag", mode))
        return None
    identity = {k: entry[k] for k in _IDENTITY_FIELDS if entry.get(k) is not None}
    identity["deviceId"] = device_id
    if mode == "create":
        hub_registry.create_device(identity)
    else:
        current = hub_registry.get_device(device_id)
        if current is not None and "authentication" not in identity:  # keep the keys it has
            identity["authentication"] = current.identity["authentication"]
        hub_registry.update_device(identity, _etag(entry, "eTag", mode) or "*")
    patch = _twin_patch(entry)
    if not patch:
        return None
    try:
        hub_registry.update_twin(device_id, patch, None)
    except errors.HubError as exc:
        return f"The device was registered but its twin was not set: {exc.message}"
    return None


def _etag(entry: dict[str, Any], name: str, mode: str) -> str | None:
    """The etag an IfMatchETag mode must match (None for the other modes)."""
    if not mode.endswith("IfMatchETag"):
        return None
    value = entry.get(name)
    if not isinstance(value, str) or not value.strip():
        raise errors.BadRequest(f"importMode {mode} needs the current {name} of the device.")
    return value


def _twin_patch(entry: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    if entry.get("tags"):
        patch["tags"] = entry["tags"]
    properties = entry.get("properties")
    if isinstance(properties, dict) and properties.get("desired"):
        patch["properties"] = {"desired": properties["desired"]}
    return patch
