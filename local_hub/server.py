"""`HubServer`: the hub's parts wired together on one asyncio event loop.

A data directory holds everything a hub is: `hub.db` (SQLite: identities, twins, sessions, jobs,
configurations), `tls/` (CA and server certificate), `owner.key` (the `iothubowner` policy's keys),
`artifacts/`, and, while the hub runs, `hub.json`: how to reach it. Restarting on the same
directory brings back the same hub.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from local_hub import (
    certs,
    configurations,
    files,
    import_export,
    jobs,
    quotas,
    redacting,
    registry,
    store,
)
from local_hub.clock import Clock
from local_hub.limits import DEFAULT_CONNECTION_LIMITS, ConnectionLimits
from local_hub.mqtt import DeviceEndpoint
from local_hub.rest import ServiceContext, make_app, signed_url
from local_hub.rest.connections import CappedSite

__all__ = ["DEFAULT_NAME", "HTTPS_PORT", "MQTT_PORT", "HubServer", "serve"]

log = logging.getLogger(__name__)

_SWITCH_INTERVAL = 0.001  # seconds a thread holds the interpreter before it offers it on

MQTT_PORT = 8883
HTTPS_PORT = 443
DEFAULT_NAME = "twinfleet"


class HubServer:
    """One hub: store, registry, device endpoint (MQTT/TLS) and service endpoint (HTTPS).

    Args:
        data_dir: the hub's directory (created if missing).
        host: the address both endpoints listen on (a loopback address for tests).
        service_port: the HTTPS port; 0 picks a free one.
        mqtt_port: the MQTT port; the device SDK always dials 8883.
        name: the hub's name; devices use `<name>.local` as their HostName.
        clock: the time source (Unix seconds), injectable for tests.
        configuration_interval: seconds between configuration evaluations (twin changes
            also trigger one).
        tier: an IoT Hub tier (F1, S1, S2, S3) whose throttles the hub enforces; None: none.
        units: the tier's number of units.
        limits: the quotas to enforce, made by the caller (tests inject clocks this way);
            overrides `tier` and `units`.

    Raises:
        ValueError: an unknown tier or a unit count the tier does not allow.
    """

    def __init__(
        self,
        data_dir: Path,
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
        limits: quotas.Quotas | None = None,
        service_middlewares: Sequence[Middleware] = (),
    ) -> None:
        self.quotas = limits or (quotas.Quotas(tier, units) if tier is not None else None)
        self.data_dir = Path(data_dir)
        self.connection_limits = connection_limits
        self.host = host
        self.name = name or DEFAULT_NAME
        self._requested_service_port = service_port
        self._requested_mqtt_port = mqtt_port
        self.clock = clock
        self._service_middlewares = tuple(service_middlewares)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        self.certs = certs.ensure_certificates(self.data_dir / "tls", [host])
        self.owner_keys = files.owner_keys(self.data_dir / "owner.key")
        self.store = store.Store(self.data_dir / "hub.db")
        self.registry = registry.Registry(self.store, clock=clock)
        self.endpoint = DeviceEndpoint(
            self.registry,
            certs.server_ssl_context(self.certs),
            host_name=self.device_host_name,
            address=host,
            clock=clock,
            limits=connection_limits,
            quotas=self.quotas,
        )
        self.jobs = jobs.JobRunner(
            self.store, self.registry, self.endpoint, clock=clock, quotas=self.quotas
        )
        self.import_export = import_export.ImportExportJobs(
            self.store, self.registry, self.data_dir / "artifacts", clock=clock, quotas=self.quotas
        )
        self.configurations = configurations.ConfigurationManager(
            self.store, self.registry, clock=clock, interval=configuration_interval
        )
        self.context: ServiceContext | None = None
        self._runner: web.AppRunner | None = None
        self._site: CappedSite | None = None
        self.service_port = 0

    @property
    def device_host_name(self) -> str:
        """The HostName devices put in their connection strings and SAS tokens."""
        return f"{self.name}.local"

    @property
    def service_host_name(self) -> str:
        """The HostName of the service connection string: where the REST endpoint listens.

        On port 443 it is the bare address, as every SDK expects of IoT Hub (the Node.js, .NET,
        Java and C service SDKs take HostName as a host name and always dial 443). On any other
        port it is `<address>:<port>`, which only the Python service SDK understands.
        """
        if self.service_port == HTTPS_PORT:
            return self.host
        return f"{self.host}:{self.service_port}"

    async def start(self) -> None:
        """Open both endpoints, then write hub.json."""
        # What the loop hands off (a query's evaluation, file scans) runs on one worker thread
        # the hub owns from its start to its loop's close (`shutdown_default_executor` joins
        # it): started now, so a hub never grows a thread while it serves.
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(1, thread_name_prefix="hub-worker"))
        await loop.run_in_executor(None, _nothing)
        await self.endpoint.start(self.host, self._requested_mqtt_port)
        self.context = ServiceContext(
            registry=self.registry,
            endpoint=self.endpoint,
            host_name="",
            owner_keys=self.owner_keys,
            artifacts_dir=self.data_dir / "artifacts",
            clock=self.clock,
            jobs=self.jobs,
            import_export=self.import_export,
            configurations=self.configurations,
            quotas=self.quotas,
            body_timeout=self.connection_limits.https_body_timeout,
        )
        self._runner = web.AppRunner(
            make_app(self.context, middlewares=self._service_middlewares),
            access_log=None,
            keepalive_timeout=self.connection_limits.https_idle_timeout,
            # after an early answer (a 408 for a slow body), read what still comes this long
            lingering_time=min(2.0, self.connection_limits.https_body_timeout),
        )
        await self._runner.setup()
        site = CappedSite(
            self._runner,
            self.host,
            self._requested_service_port,
            ssl_context=certs.server_ssl_context(self.certs),
            limits=self.connection_limits,
            refusals=self.context.refusals,
        )
        await site.start()
        self._site = site
        self.service_port = site.port
        self.context.host_name = self.service_host_name
        log.info(
            "device endpoint (MQTT over TLS) listening on %s:%d", self.host, self.endpoint.port
        )
        log.info("service endpoint (HTTPS) listening on https://%s", self.service_host_name)
        self.jobs.resume()
        self.import_export.resume()
        self.configurations.start()
        info_path = self.data_dir / "hub.json"
        files.write_atomic(info_path, json.dumps(self.info, indent=2).encode(), mode=0o600)
        log.info("hub %s ready: %s", self.name, info_path)
        if self.quotas is not None:
            log.info("enforcing IoT Hub's %s quotas (GET /quotas shows their use)", self.quotas)

    async def stop(self) -> None:
        """Close both endpoints and the store; remove hub.json."""
        (self.data_dir / "hub.json").unlink(missing_ok=True)
        if self._runner is not None:
            # Idle keep-alive clients, and clients that left without answering a TLS
            # close_notify, would hold their sockets past the hub's stop: drop them at once.
            if self._site is not None:
                self._site.abort_connections()
            await self._runner.cleanup()
        await self.jobs.close()
        await self.import_export.close()
        await self.configurations.close()
        await self.endpoint.close()
        self.store.close()
        # Let closing TLS transports send close_notify and release their sockets.
        await asyncio.sleep(0.05)

    @property
    def service_connection_string(self) -> str:
        key = base64.b64encode(self.owner_keys[0]).decode()
        return (
            f"HostName={self.service_host_name};SharedAccessKeyName=iothubowner;"
            f"SharedAccessKey={key}"
        )

    def device_connection_string(self, device_id: str, key: str) -> str:
        """A device connection string for the SDK: HostName is the hub's name, the socket goes
        to GatewayHostName."""
        return (
            f"HostName={self.device_host_name};DeviceId={device_id};SharedAccessKey={key};"
            f"GatewayHostName={self.host}"
        )

    def artifact_url(self, name: str, ttl: float = 24 * 3600) -> str:
        """A download URL for an artifact, signed and valid for `ttl` seconds."""
        expiry = int(self.clock() + ttl)
        return signed_url(self.service_host_name, self.owner_keys[0], name, expiry)

    @property
    def info(self) -> dict[str, Any]:
        """What hub.json says: how to reach this hub."""
        return {
            "name": self.name,
            "serviceConnectionString": self.service_connection_string,
            "caCertificatePath": str(self.certs.ca_cert.resolve()),
            "caBundlePath": str(self.certs.bundle.resolve()),
            "deviceHostName": self.device_host_name,
            "gatewayHostName": self.host,
            "serviceEndpoint": {"host": self.host, "port": self.service_port},
            "deviceEndpoint": {"host": self.host, "port": self.endpoint.port},
            "dataDir": str(self.data_dir.resolve()),
            "tier": None if self.quotas is None else self.quotas.tier,
            "units": None if self.quotas is None else self.quotas.units,
            "pid": os.getpid(),
        }


async def serve(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    service_port: int = 8443,
    name: str | None = None,
    stop: asyncio.Event | None = None,
    tier: str | None = None,
    units: int = 1,
) -> None:
    """Run a hub on the running event loop until `stop` is set or the task is cancelled.

    Args:
        data_dir: the hub's directory (created if new; reused as the same hub).
        host: the address both endpoints listen on.
        service_port: the HTTPS port (0: any free port; hub.json says which).
        name: the hub's name; devices use `<name>.local` as their HostName.
        stop: set it to stop the hub; None runs until cancelled.
        tier: enforce this IoT Hub tier's throttles (F1, S1, S2, S3); None: no quotas.
        units: the tier's number of units.

    Raises:
        OSError: an endpoint could not listen (address or port taken); nothing is left running.
        ValueError: an unknown tier or a unit count the tier does not allow.
    """
    redacting.install_redactor()  # whatever handlers the caller configured: no secret in them
    server = HubServer(
        data_dir, host=host, service_port=service_port, name=name, tier=tier, units=units
    )
    try:
        await server.start()
        # The fleet just loaded (every twin, identity and index entry) lives as long as the
        # process: out of the cyclic collector's reach, a full collection no longer walks it,
        # which with 100,000 twins held the loop (and every device) for half a second.
        gc.freeze()
        # The store's writer and the query worker hand the interpreter back to the loop at
        # each switch interval: at the default 5 ms, a device's round trip that crosses
        # threads several times waits that long at each crossing behind a running query.
        sys.setswitchinterval(_SWITCH_INTERVAL)
        await (stop or asyncio.Event()).wait()
    finally:
        await server.stop()
        log.info("hub %s stopped", server.name)


def _nothing() -> None:
    """Run once on the hub's worker thread, to start it."""
