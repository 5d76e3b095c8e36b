"""`ProvisioningServer`: a local Device Provisioning Service linked to local hubs.

A data directory holds the service: `dps.db` (SQLite: enrollments, groups, registration states,
operations; the ID scope), `owner.key` (the `provisioningserviceowner` policy's keys), `tls/`
(its server certificate, issued by the first linked hub's CA) and, while it runs, `dps.json`:
how to reach it. Restarting on the same directory brings back the same service.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from local_hub import certs, files
from local_hub.clock import Clock
from local_hub.provisioning.endpoint import ProvisioningEndpoint
from local_hub.provisioning.hubs import LinkedHub
from local_hub.provisioning.registrar import Registrar
from local_hub.provisioning.service_api import make_service_app
from local_hub.provisioning.state import ProvisioningStore

__all__ = ["MQTT_PORT", "OWNER_POLICY", "ProvisioningServer", "serve"]

log = logging.getLogger(__name__)

MQTT_PORT = 8883
OWNER_POLICY = "provisioningserviceowner"


class ProvisioningServer:
    """One provisioning service: store, registrar and device endpoint (MQTT/TLS on 8883).

    Args:
        data_dir: the service's directory (created if missing).
        hub_dirs: the data directories of the hubs it assigns to; the first one's CA issues the
            service's TLS certificate (it must have been started once, so its CA exists).
        host: the address the device endpoint listens on (its own: it takes port 8883).
        service_port: the service API's HTTPS port (0: any free one; dps.json says which).
        mqtt_port: the device endpoint's port; the device SDK always dials 8883.
        clock: the time source (Unix seconds).

    Raises:
        ValueError: no hub given, or the first hub has no CA yet.
    """

    def __init__(
        self,
        data_dir: Path,
        hub_dirs: Sequence[Path],
        *,
        host: str = "127.0.0.1",
        service_port: int = 0,
        mqtt_port: int = MQTT_PORT,
        clock: Clock = time.time,
    ) -> None:
        if not hub_dirs:
            raise ValueError("a provisioning service needs at least one --hub-dir")
        self.data_dir = Path(data_dir)
        self.host = host
        self._requested_service_port = service_port
        self.service_port = 0
        self._clock = clock
        self._runner: web.AppRunner | None = None
        self._requested_mqtt_port = mqtt_port
        self.hubs = [LinkedHub(Path(d)) for d in hub_dirs]
        hub_tls = Path(hub_dirs[0]) / "tls"
        if not (hub_tls / "ca.pem").exists() or not (hub_tls / "ca.key").exists():
            raise ValueError(f"the hub in {hub_dirs[0]} has no CA yet: start it once first")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        hub_certs = certs.CertPaths(
            ca_cert=hub_tls / "ca.pem",
            ca_key=hub_tls / "ca.key",
            server_cert=hub_tls / "server.pem",
            server_key=hub_tls / "server.key",
            bundle=hub_tls / "ca-bundle.pem",
        )
        self.certs = certs.issue_server_certificate(hub_certs, self.data_dir / "tls", [host])
        self.owner_keys = files.owner_keys(self.data_dir / "owner.key")
        self.store = ProvisioningStore(self.data_dir / "dps.db")
        self.registrar = Registrar(self.store, self.hubs)
        self.endpoint = ProvisioningEndpoint(
            self.store, self.registrar, certs.server_ssl_context(self.certs), clock=clock
        )

    @property
    def id_scope(self) -> str:
        return self.registrar.id_scope

    @property
    def service_connection_string(self) -> str:
        key = base64.b64encode(self.owner_keys[0]).decode()
        return (
            f"HostName={self.host}:{self.service_port};SharedAccessKeyName={OWNER_POLICY};"
            f"SharedAccessKey={key}"
        )

    @property
    def info(self) -> dict[str, Any]:
        """What dps.json says: how to reach this service."""
        return {
            "provisioningHost": self.host,
            "idScope": self.id_scope,
            "serviceConnectionString": self.service_connection_string,
            "caCertificatePath": str(self.certs.ca_cert.resolve()),
            "deviceEndpoint": {"host": self.host, "port": self.endpoint.port},
            "serviceEndpoint": {"host": self.host, "port": self.service_port},
            "linkedHubs": [str(hub.data_dir.resolve()) for hub in self.hubs],
            "dataDir": str(self.data_dir.resolve()),
            "pid": os.getpid(),
        }

    async def start(self) -> None:
        """Open the device endpoint and the service API, then write dps.json."""
        await self.endpoint.start(self.host, self._requested_mqtt_port)
        app, set_host_name = make_service_app(self.store, self.owner_keys, self._clock)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self.host,
            self._requested_service_port,
            ssl_context=certs.server_ssl_context(self.certs),
        )
        await site.start()
        server = site._server
        assert server is not None
        self.service_port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        set_host_name(f"{self.host}:{self.service_port}")
        info_path = self.data_dir / "dps.json"
        files.write_atomic(info_path, json.dumps(self.info, indent=2).encode(), mode=0o600)
        log.info(
            "provisioning service (ID scope %s) listening on %s:%d; %s",
            self.id_scope, self.host, self.endpoint.port, info_path,
        )  # fmt: skip

    async def stop(self) -> None:
        (self.data_dir / "dps.json").unlink(missing_ok=True)
        if self._runner is not None:
            web_server = self._runner.server
            for handler in list(web_server.connections if web_server else []):
                if handler.transport is not None:
                    handler.transport.abort()
            await self._runner.cleanup()
        await self.endpoint.close()
        self.store.close()
        await asyncio.sleep(0.05)


async def serve(
    data_dir: Path,
    hub_dirs: Sequence[Path],
    *,
    host: str = "127.0.0.1",
    service_port: int = 0,
    stop: asyncio.Event | None = None,
) -> None:
    """Run a provisioning service until `stop` is set or the task is cancelled.

    Raises:
        OSError: the device endpoint could not listen.
        ValueError: no hub, or the first hub has no CA yet.
    """
    server = ProvisioningServer(data_dir, hub_dirs, host=host, service_port=service_port)
    try:
        await server.start()
        await (stop or asyncio.Event()).wait()
    finally:
        await server.stop()
        log.info("provisioning service stopped")
