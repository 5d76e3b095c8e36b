"""Test-only switches for a local hub, installed when the hub is made, never checked otherwise.

A production hub's requests go through no test hook at all. A test that wants the service endpoint
to fail on purpose makes its hub with the switch installed as a service middleware::

    faults = testing.Faults()
    with LocalHub(data_dir, service_middlewares=[faults.middleware]) as hub:
        faults.inject(503, 2)  # the next two service requests fail with 503 Server Error

The failures are the hub's own errors (IoT Hub's error body, `Retry-After` on a 429), answered
before authentication, so they look to a client exactly as an overloaded IoT Hub does.
"""

from __future__ import annotations

import threading

from aiohttp import web
from aiohttp.typedefs import Handler

from local_hub import errors

__all__ = ["Faults"]


class Faults:
    """Fault injection for one hub's service endpoint: the next requests fail with a status.

    Thread-safe: a test injects from its own thread while the hub serves on its loop.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status = 0
        self._remaining = 0
        self._retry_after = 1.0

    def inject(self, status: int, count: int, retry_after: float = 1.0) -> None:
        """Make the next `count` service requests fail with `status` (429 or 5xx); a 429 says
        to retry after `retry_after` seconds. A count of 0 clears what is left."""
        if status != 429 and not 500 <= status <= 599:
            raise ValueError(f"Inject 429 or a 5xx status, not {status}.")
        with self._lock:
            self._status, self._remaining, self._retry_after = status, count, retry_after

    def take(self) -> errors.HubError | None:
        """The failure the next request gets, or None when none is left."""
        with self._lock:
            if self._remaining <= 0:
                return None
            self._remaining -= 1
            status, retry_after = self._status, self._retry_after
        if status == 429:
            return errors.Throttled("Injected fault: throttled.", retry_after=retry_after)
        return errors.ServerError("Injected fault: service unavailable.", status=status)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The service middleware that answers with the injected failures."""
        fault = self.take()
        if fault is not None:
            raise fault
        return await handler(request)
