"""`Devices`: the hub's registry of device identities, their keys and connection strings."""

from __future__ import annotations

import base64
import builtins
import secrets
from typing import Any

from twin_manager import models, raw
from twin_manager._sdk import Sdk
from twin_manager.sentinels import NOT_GIVEN, NotGiven

__all__ = ["Devices"]


def _new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _identity(
    device_id: str, enabled: bool, primary_key: str | None, secondary_key: str | None
) -> raw.RawDevice:
    return {
        "deviceId": device_id,
        "status": "enabled" if enabled else "disabled",
        "authentication": {
            "type": "sas",
            "symmetricKey": {"primaryKey": primary_key, "secondaryKey": secondary_key},
        },
    }


class Devices:
    """Device identities of one hub (`fleet.devices`).

    Args:
        sdk: the hub's SDK seam.
        device_host_name: the HostName devices put in their connection strings.
        gateway_host_name: the address devices dial, where it differs from the HostName.
    """

    def __init__(self, sdk: Sdk, device_host_name: str, gateway_host_name: str | None) -> None:
        self._sdk = sdk
        self._device_host_name = device_host_name
        self._gateway_host_name = gateway_host_name

    def create(
        self,
        device_id: str,
        *,
        primary_key: str | None = None,
        secondary_key: str | None = None,
        enabled: bool = True,
    ) -> models.Device:
        """Register a device with SAS keys (generated when not given).

        Raises:
            Conflict: the id is taken.
        """
        identity = _identity(
            device_id, enabled, primary_key or _new_key(), secondary_key or _new_key()
        )
        identity["capabilities"] = {"iotEdge": False}
        return models.Device.from_raw(self._sdk.put_device(identity))

    def get(self, device_id: str) -> models.Device:
        """Raises DeviceNotFound when there is no such device."""
        return models.Device.from_raw(self._sdk.get_device(device_id))

    def list(self, top: int = 1000) -> builtins.list[models.Device]:
        """Up to `top` device identities (for more, query `SELECT * FROM devices`)."""
        return [models.Device.from_raw(d) for d in self._sdk.list_devices(top)]

    def set_enabled(self, device_id: str, enabled: bool) -> models.Device:
        """Enable or disable a device (a disabled device cannot connect)."""
        device = self.get(device_id)
        identity = _identity(device_id, enabled, device.primary_key, device.secondary_key)
        return models.Device.from_raw(self._sdk.put_device(identity, device.etag or "*"))

    def set_keys(
        self, device_id: str, primary_key: str, secondary_key: str, *, if_match: str
    ) -> models.Device:
        """Replace a device's SAS keys, only if its identity is still at `if_match` (its etag):
        the step of a key rotation, safe against another writer. The keys are secrets: they are
        never logged or put in an error.

        Raises:
            PreconditionFailed: the identity changed since it was read (read it again).
            DeviceNotFound: there is no such device.
        """
        device = self.get(device_id)
        identity = _identity(device_id, device.status == "enabled", primary_key, secondary_key)
        return models.Device.from_raw(self._sdk.put_device(identity, if_match))

    def bulk(self, entries: builtins.list[dict[str, Any]]) -> models.BulkResult:
        """One bulk registry operation (`POST /devices`): up to 100 `ExportImportDevice`
        entries (`id`, `importMode` such as `create` or `updateTwin`, `status`,
        `authentication`, `tags`, `properties.desired`), each applied on its own.

        Returns:
            Which entries failed and why (every other entry was applied).

        Raises:
            ValueError: more than 100 entries, or none.
        """
        if not 1 <= len(entries) <= 100:
            raise ValueError(
                f"A bulk registry operation takes 1 to 100 devices, not {len(entries)}."
            )
        return models.BulkResult.from_raw(self._sdk.bulk_registry(entries))

    def delete(self, device_id: str, *, if_match: str | NotGiven = NOT_GIVEN) -> None:
        """Remove a device identity and its twin (when its etag is still `if_match`, if given)."""
        self._sdk.delete_device(device_id, None if isinstance(if_match, NotGiven) else if_match)

    def connection_string(
        self, device_id: str, *, gateway_host_name: str | None = None, key_type: str = "primary"
    ) -> str:
        """The connection string a device uses (it holds the device's key: keep it secret).

        Args:
            device_id: the device.
            gateway_host_name: the address devices dial, where it differs from the HostName.
            key_type: "primary" or "secondary": which of the identity's keys to use.
        """
        device = self.get(device_id)
        key = device.primary_key if key_type == "primary" else device.secondary_key
        text = f"HostName={self._device_host_name};DeviceId={device_id};SharedAccessKey={key}"
        gateway = gateway_host_name or self._gateway_host_name
        return text + (f";GatewayHostName={gateway}" if gateway else "")
