"""`LocalDps`: a provisioning service running on a background thread, for embedding (the demo),
as `LocalHub` runs a hub. Its event loop is its own; the methods here are safe from any thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from local_hub.background_servers import BackgroundServer
from local_hub.provisioning.enrollments import Enrollments
from local_hub.provisioning.server import ProvisioningServer
from local_hub.provisioning.state import ProvisioningStore

__all__ = ["LocalDps"]


class LocalDps(BackgroundServer[ProvisioningServer]):
    """A running provisioning service on a background thread; `start()`/`close()` or `with`.

    Args:
        data_dir: the service's directory (created if missing).
        hub_dirs: the linked hubs' data directories (the first one's CA signs; it must have
            been started once).
        host: the address its device endpoint takes port 8883 on.
        service_port: the service API's HTTPS port (0: any free one).
    """

    def __init__(
        self, data_dir: Path, hub_dirs: Sequence[Path], *, host: str = "127.0.0.1",
        service_port: int = 0,
    ) -> None:  # fmt: skip
        self.data_dir = Path(data_dir)
        self._hub_dirs = [Path(d) for d in hub_dirs]
        self._host = host
        self._service_port = service_port
        super().__init__("twinfleet-local-dps", "the provisioning service is not started")

    def start(self) -> LocalDps:
        """Start the service and return once it listens (dps.json written).

        Raises:
            OSError: the address or port is taken; nothing is left running.
            ValueError: no hub, or the first hub has no CA yet.
        """
        return super().start()

    def _build(self) -> ProvisioningServer:
        return ProvisioningServer(
            self.data_dir, self._hub_dirs, host=self._host, service_port=self._service_port
        )

    @property
    def info(self) -> dict[str, Any]:
        """What dps.json holds."""
        return self.server.info

    @property
    def host(self) -> str:
        """The provisioning host devices give (`provisioning_host`)."""
        return self.server.host

    @property
    def id_scope(self) -> str:
        return self.server.id_scope

    @property
    def ca_certificate_path(self) -> str:
        return str(self.server.certs.ca_cert.resolve())

    def enrollments(self) -> tuple[Enrollments, ProvisioningStore]:
        """Enrollment management on a store connection of the caller's (close the store)."""
        store = ProvisioningStore(self.data_dir / "dps.db")
        return Enrollments(store), store
