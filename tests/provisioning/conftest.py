"""Provisioning tests: a real ProvisioningServer on its own loopback address (it takes port 8883),
linked to real local hubs, reached by the unmodified `ProvisioningDeviceClient` over TLS."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from local_hub import LocalHub
from local_hub.provisioning import Enrollments, ProvisioningServer, ProvisioningStore
from tests.conftest import allocate_loopback


class RunningDps:
    """A ProvisioningServer on an event loop of its own thread; `close()` stops it."""

    def __init__(self, data_dir: Path, hub_dirs: Sequence[Path], host: str) -> None:
        self.data_dir = data_dir
        self.host = host
        self._hub_dirs = list(hub_dirs)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-dps")

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                server = ProvisioningServer(self.data_dir, self._hub_dirs, host=self.host)
                await server.start()
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                raise
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await server.stop()

        try:
            self._loop.run_until_complete(main())
        except BaseException:
            pass
        finally:
            self._loop.close()

    def start(self) -> RunningDps:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            stop = self._stop
            assert stop is not None
            self._loop.call_soon_threadsafe(stop.set)
            self._thread.join(30)

    @property
    def info(self) -> dict[str, Any]:
        return dict(json.loads((self.data_dir / "dps.json").read_text()))

    @property
    def id_scope(self) -> str:
        return str(self.info["idScope"])

    @property
    def ca_pem(self) -> str:
        return Path(self.info["caCertificatePath"]).read_text()

    def enrollments(self) -> Enrollments:
        """Enrollment management on the service's store (a connection of the caller's)."""
        return Enrollments(ProvisioningStore(self.data_dir / "dps.db"))


@pytest.fixture
def make_dps(tmp_path: Path) -> Iterator[Callable[..., RunningDps]]:
    """Start provisioning services: `make_dps(hubs, data_dir=None, host=None)`."""
    started: list[RunningDps] = []

    def make(
        hubs: Sequence[LocalHub], data_dir: Path | None = None, host: str | None = None
    ) -> RunningDps:
        running = RunningDps(
            data_dir or tmp_path / f"dps-{len(started)}",
            [hub.data_dir for hub in hubs],
            host or allocate_loopback(),
        ).start()
        started.append(running)
        return running

    yield make
    for running in reversed(started):
        running.close()
