"""`LocalHub`: an embedded hub running on a background thread, for tests and embedding.

    with LocalHub(tmp_path / "hub", host="127.0.0.2") as hub:
        registry = IoTHubRegistryManager.from_connection_string(hub.service_connection_string)
        ...

The hub's event loop runs on its own thread; the methods here are safe to call from any thread.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp.typedefs import Middleware

from local_hub import tokens
from local_hub.background_servers import BackgroundServer
from local_hub.clock import Clock
from local_hub.limits import DEFAULT_CONNECTION_LIMITS, ConnectionLimits
from local_hub.quotas import Quotas
from local_hub.server import MQTT_PORT, HubServer

__all__ = ["LocalHub"]


class LocalHub(BackgroundServer[HubServer]):
    """A running hub on a background thread. Use as a context manager, or `start()`/`close()`.

    Args:
        data_dir: the hub's directory; reusing it brings back the same hub.
        host: the address both endpoints listen on (use a distinct loopback address per hub).
        service_port: the HTTPS port; 0 picks a free one.
        mqtt_port: the MQTT port; the device SDK always dials 8883.
        name: the hub's name; devices use `<name>.local` as their HostName.
        clock: the time source (Unix seconds).
        configuration_interval: seconds between evaluations of automatic configurations.
        connection_limits: timeouts and caps for slow, idle and unauthenticated clients.
        tier: enforce this IoT Hub tier's throttles (F1, S1, S2, S3); None (default): no quotas.
        units: the tier's number of units.
        limits: a `local_hub.quotas.Quotas` to enforce instead (tests inject clocks this way).
        service_middlewares: aiohttp middlewares to run on every service request before
            authentication (`local_hub.testing.Faults` injects failures this way).
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        host: str = "127.0.0.1",
        service_port: int = 0,
        mqtt_port: int = MQTT_PORT,
        name: str | None = None,
        clock: Clock = time.time,
        configuration_interval: float = 5.0,
        connection_limits: ConnectionLimits = DEFAULT_CONNECTION_LIMITS,
        tier: str | None = None,
        units: int = 1,
        limits: Quotas | None = None,
        service_middlewares: Sequence[Middleware] = (),
    ) -> None:
        self._args: dict[str, Any] = {
            "host": host, "service_port": service_port, "mqtt_port": mqtt_port, "name": name,
            "clock": clock, "configuration_interval": configuration_interval, "tier": tier,
            "units": units, "limits": limits,
        }  # fmt: skip
        self._args["connection_limits"] = connection_limits
        self._args["service_middlewares"] = tuple(service_middlewares)
        self.data_dir = Path(data_dir)
        super().__init__(
            "twinfleet-local-hub", "the hub is not running; use start() or a with block"
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> LocalHub:
        """Start the hub and return once both endpoints accept connections.

        Raises:
            OSError: an address or port is taken; the hub is not left running.
        """
        return super().start()

    def _build(self) -> HubServer:
        return HubServer(self.data_dir, **self._args)

    # -- facts -----------------------------------------------------------------------------

    @property
    def info(self) -> dict[str, Any]:
        """What hub.json holds."""
        return self.server.info

    @property
    def service_connection_string(self) -> str:
        return self.server.service_connection_string

    @property
    def ca_certificate_path(self) -> str:
        return str(self.server.certs.ca_cert)

    @property
    def ca_bundle_path(self) -> str:
        return str(self.server.certs.bundle)

    @property
    def ca_certificate(self) -> str:
        """The CA certificate's PEM text (the device SDK's `server_verification_cert`)."""
        return self.server.certs.ca_cert.read_text()

    @property
    def quotas(self) -> dict[str, Any]:
        """Use against each quota (what `GET /quotas` shows); `tier` None when there are none."""
        limits = self.server.quotas
        if limits is None:
            return {"tier": None, "units": None, "throttles": {}}
        return self.call(_view(limits))

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def device_host_name(self) -> str:
        return self.server.device_host_name

    @property
    def gateway_host_name(self) -> str:
        return self.server.host

    @property
    def service_port(self) -> int:
        return self.server.service_port

    def device_connection_string(self, device_id: str, key: str) -> str:
        return self.server.device_connection_string(device_id, key)

    def artifact_url(self, name: str, ttl: float = 24 * 3600) -> str:
        return self.server.artifact_url(name, ttl)

    def upload_artifact(self, name: str, data: bytes) -> dict[str, Any]:
        """Upload an artifact over the REST endpoint with the owner key; returns its facts
        (`name`, `size`, `sha256`, `path`) plus a signed download `url`."""
        server = self.server
        key = server.owner_keys[0]
        token = tokens.make_sas_token(server.service_host_name, key, int(time.time()) + 600)
        request = urllib.request.Request(
            f"https://{server.service_host_name}/artifacts/{urllib.parse.quote(name)}",
            data=data,
            method="PUT",
            headers={"Authorization": f"{token}&skn=iothubowner"},
        )
        context = ssl.create_default_context(cafile=self.ca_certificate_path)
        with urllib.request.urlopen(request, context=context, timeout=60) as response:
            facts: dict[str, Any] = json.loads(response.read())
        facts["url"] = self.artifact_url(name)
        return facts


async def _view(limits: Quotas) -> dict[str, Any]:
    return limits.view()
