"""`DashboardServer`: the dashboard on its own event loop in a background thread.

The CLI blocks on it; tests drive it from Playwright's synchronous API, which runs an event loop
of its own in the test's thread, so the server's loop must live in another thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from types import TracebackType

from aiohttp import web

from twinfleet.dashboard import hub_access
from twinfleet.dashboard.app import make_app
from twinfleet.dashboard.context import Dashboard
from twinfleet.dashboard.settings import Settings

__all__ = ["DashboardServer"]

log = logging.getLogger(__name__)


class DashboardServer:
    """Serve a dashboard until `close()`.

    Args:
        settings: the dashboard's settings.
        access: the hub it shows.
    """

    def __init__(self, settings: Settings, access: hub_access.HubAccess) -> None:
        self.settings = settings
        self.dashboard = Dashboard.create(settings, access)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.port = settings.port

    @property
    def url(self) -> str:
        host = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        return f"http://{host}:{self.port}/"

    @property
    def url_with_token(self) -> str:
        """The URL to open (with `?token=` when one is needed): print it, never log it."""
        token = self.settings.token
        return f"{self.url}?token={token}" if token else self.url

    def start(self) -> DashboardServer:
        """Listen; returns once the port is bound (raises OSError if it cannot be)."""
        self.dashboard.workers.start()
        self._thread = threading.Thread(target=self._serve, name="dashboard", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self.dashboard.workers.close()
            raise self._error
        log.info("dashboard listening on %s", self.url)
        return self

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        assert self._runner is not None
        loop.run_until_complete(self._runner.cleanup())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    async def _listen(self) -> None:
        self._runner = web.AppRunner(make_app(self.dashboard), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the bound port, for port 0

    def close(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
        self.dashboard.workers.close()

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
