"""`LocalDps`: a provisioning service running on a background thread, for embedding (the demo),
as `LocalHub` runs a hub. Its event loop is its own; the methods here are safe from any thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from local_hub.provisioning.enrollments import Enrollments
from local_hub.provisioning.server import ProvisioningServer
from local_hub.provisioning.state import ProvisioningStore

__all__ = ["LocalDps"]


class LocalDps:
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: ProvisioningServer | None = None

    def start(self) -> LocalDps:
        """Start the service and return once it listens (dps.json written).

        Raises:
            OSError: the address or port is taken; nothing is left running.
            ValueError: no hub, or the first hub has no CA yet.
        """
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            server: ProvisioningServer | None = None
            try:
                server = ProvisioningServer(
                    self.data_dir, self._hub_dirs, host=self._host,
                    service_port=self._service_port,
                )  # fmt: skip
                self._server = server
                loop.run_until_complete(server.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                if server is not None:
                    loop.run_until_complete(server.stop())
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(server.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="twinfleet-local-dps")
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def close(self) -> None:
        """Stop the service: endpoints closed, store closed, dps.json removed."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> LocalDps:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def server(self) -> ProvisioningServer:
        if self._server is None:
            raise RuntimeError("the provisioning service is not started")
        return self._server

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
