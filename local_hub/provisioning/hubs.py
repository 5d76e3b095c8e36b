"""The hubs a provisioning service assigns devices to, reached through their service REST API.

A linked hub is given by its data directory. Its `hub.json` (written while it runs) names its
service endpoint, its owner connection string and its CA, and is read afresh for each assignment,
so the hub may restart on another port, or run in another process. The device-facing name of a
hub (`assignedHub`) is the address its device endpoint listens on: the device SDK connects to
`assignedHub:8883` and signs for `assignedHub/devices/{deviceId}`, which the hub accepts.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from local_hub import tokens
from local_hub.provisioning import keys

__all__ = ["API_VERSION", "HubUnavailable", "LinkedHub"]

API_VERSION = "2021-04-12"
_TOKEN_TTL = 300
_TIMEOUT = aiohttp.ClientTimeout(total=15)


class HubUnavailable(RuntimeError):
    """The hub is not running, or refused or failed the request (the message says which)."""


@dataclass(frozen=True)
class _Service:
    base_url: str
    host_name: str
    key_name: str
    key: bytes
    ssl: ssl.SSLContext


class LinkedHub:
    """A local hub the provisioning service may assign devices to."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)

    def info(self) -> dict[str, Any]:
        """The hub's hub.json.

        Raises:
            HubUnavailable: the hub is not running (no readable hub.json).
        """
        try:
            return dict(json.loads((self.data_dir / "hub.json").read_text()))
        except (OSError, ValueError):
            raise HubUnavailable(f"the hub in {self.data_dir} is not running") from None

    @property
    def assigned_hub(self) -> str:
        """The host a device connects to (the hub's device endpoint address)."""
        return str(self.info()["gatewayHostName"])

    @property
    def ca_certificate_path(self) -> Path:
        return Path(self.info()["caCertificatePath"])

    def _service(self) -> _Service:
        info = self.info()
        fields = dict(
            part.split("=", 1) for part in info["serviceConnectionString"].split(";") if "=" in part
        )
        endpoint = info["serviceEndpoint"]
        context = ssl.create_default_context(cafile=info["caCertificatePath"])
        return _Service(
            base_url=f"https://{endpoint['host']}:{endpoint['port']}",
            host_name=fields["HostName"],
            key_name=fields["SharedAccessKeyName"],
            key=keys.decode_key(fields["SharedAccessKey"]),
            ssl=context,
        )

    async def _request(
        self, session: aiohttp.ClientSession, service: _Service, method: str, path: str, body: Any
    ) -> tuple[int, Any]:
        token = tokens.make_sas_token(
            service.host_name, service.key, int(time.time()) + _TOKEN_TTL, service.key_name
        )
        url = f"{service.base_url}{path}?api-version={API_VERSION}"
        headers = {"Authorization": token}
        if method == "DELETE":
            headers["If-Match"] = "*"
        async with session.request(
            method, url, json=body, headers=headers, ssl=service.ssl
        ) as response:
            text = await response.text()
            return response.status, (json.loads(text) if text else None)

    async def _call(self, method: str, path: str) -> tuple[int, Any]:
        """One body-less request on a session of its own: (status, parsed body).

        Raises:
            HubUnavailable: the hub is not running or cannot be reached.
        """
        service = self._service()
        try:
            async with aiohttp.ClientSession(timeout=_TIMEOUT) as session:
                return await self._request(session, service, method, path, None)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: BaseException) -> HubUnavailable:
        return HubUnavailable(f"the hub in {self.data_dir} is unreachable: {type(exc).__name__}")

    async def ensure_device(
        self, device_id: str, primary_key: str, secondary_key: str, initial_twin: dict[str, Any]
    ) -> bool:
        """Create the identity with these keys and give its twin `initial_twin`, unless the
        identity exists. True when it was created.

        Raises:
            HubUnavailable: the hub is down or answered with an error.
        """
        service = self._service()
        path = f"/devices/{urllib.parse.quote(device_id, safe='')}"
        identity = {
            "deviceId": device_id,
            "status": "enabled",
            "authentication": {
                "type": "sas",
                "symmetricKey": {"primaryKey": primary_key, "secondaryKey": secondary_key},
            },
            "capabilities": {"iotEdge": False},
        }
        try:
            async with aiohttp.ClientSession(timeout=_TIMEOUT) as session:
                status, _ = await self._request(session, service, "PUT", path, identity)
                if status == 409:
                    return False
                if status != 200:
                    raise HubUnavailable(f"the hub refused to create {device_id!r}: HTTP {status}")
                tags = initial_twin.get("tags") or {}
                desired = (initial_twin.get("properties") or {}).get("desired") or {}
                if tags or desired:
                    patch = {"tags": tags, "properties": {"desired": desired}}
                    twin_path = f"/twins/{urllib.parse.quote(device_id, safe='')}"
                    status, _ = await self._request(session, service, "PATCH", twin_path, patch)
                    if status != 200:
                        raise HubUnavailable(
                            f"the hub refused the initial twin of {device_id!r}: HTTP {status}"
                        )
                return True
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._unreachable(exc) from None

    async def twin(self, device_id: str) -> dict[str, Any] | None:
        """The device's twin (tags, desired and reported properties), or None without one.

        Raises:
            HubUnavailable: the hub is down or answered with an error.
        """
        path = f"/twins/{urllib.parse.quote(device_id, safe='')}"
        status, body = await self._call("GET", path)
        if status == 404:
            return None
        if status != 200 or not isinstance(body, dict):
            raise HubUnavailable(
                f"the hub refused to read the twin of {device_id!r}: HTTP {status}"
            )
        return body

    async def delete_device(self, device_id: str) -> bool:
        """Delete the identity (and its twin); False when there was none.

        Raises:
            HubUnavailable: the hub is down or answered with an error.
        """
        path = f"/devices/{urllib.parse.quote(device_id, safe='')}"
        status, _ = await self._call("DELETE", path)
        if status == 404:
            return False
        if status not in (200, 204):
            raise HubUnavailable(f"the hub refused to delete {device_id!r}: HTTP {status}")
        return True
