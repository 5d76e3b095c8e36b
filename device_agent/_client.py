"""The one module that touches `azure-iot-device`: a small seam over its aio client.

The SDK calls handlers on threads of its own; this seam hands every event to the agent's event
loop with `call_soon_threadsafe`, so the agent's code runs on one loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from azure.iot.device import MethodResponse, exceptions
from azure.iot.device.aio import IoTHubDeviceClient

from device_agent import errors

__all__ = ["DeviceConnection", "MethodCall"]

log = logging.getLogger(__name__)

# What the SDK raises when the connection is lost under an operation (not a refused credential).
_DROPPED = (
    exceptions.ConnectionDroppedError, exceptions.ConnectionFailedError,
    exceptions.NoConnectionError, exceptions.OperationCancelled, exceptions.OperationTimeout,
)  # fmt: skip


@contextlib.contextmanager
def _dropping(what: str) -> Iterator[None]:
    """Turn the SDK's lost-connection errors into a `TemporaryError` naming what was under way."""
    try:
        yield
    except _DROPPED as exc:
        raise errors.TemporaryError(
            f"the connection to the hub was lost while {what} ({type(exc).__name__})", delay=1.0
        ) from exc


class MethodCall:
    """A direct method request: its name, payload and id (to answer it)."""

    def __init__(self, request: Any) -> None:
        self.request = request
        self.name: str = request.name
        self.payload: Any = request.payload


class DeviceConnection:
    """The device's connection to its hub."""

    def __init__(self, connection_string: str, ca_pem: str | None, *, keep_alive: int = 60) -> None:
        self._client = IoTHubDeviceClient.create_from_connection_string(
            connection_string, server_verification_cert=ca_pem, keep_alive=keep_alive
        )

    async def connect(self) -> None:
        await self._client.connect()

    async def get_twin(self) -> dict[str, Any]:
        """The whole twin.

        Raises:
            TemporaryError: the connection was lost meanwhile.
        """
        with _dropping("reading the twin"):
            twin: dict[str, Any] = await self._client.get_twin()
        return twin

    async def patch_reported(self, patch: dict[str, Any]) -> None:
        await self._client.patch_twin_reported_properties(patch)

    def on_desired(
        self, loop: asyncio.AbstractEventLoop, handler: Callable[[dict[str, Any]], None]
    ) -> None:
        """Hand desired patches to `handler` on `loop` (the SDK subscribes as the handler is set).

        Raises:
            TemporaryError: the connection was lost before the subscription was made; setting
                the handler again subscribes again.
        """

        def received(patch: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(handler, patch)

        with _dropping("subscribing to desired properties"):
            self._client.on_twin_desired_properties_patch_received = received

    def on_method(
        self, loop: asyncio.AbstractEventLoop, handler: Callable[[MethodCall], None]
    ) -> None:
        """Hand direct method calls to `handler` on `loop` (the SDK subscribes as it is set).

        Raises:
            TemporaryError: the connection was lost before the subscription was made.
        """

        def requested(request: Any) -> None:
            loop.call_soon_threadsafe(handler, MethodCall(request))

        with _dropping("subscribing to direct methods"):
            self._client.on_method_request_received = requested

    async def answer(self, call: MethodCall, status: int, payload: Any) -> None:
        await self._client.send_method_response(
            MethodResponse.create_from_method_request(call.request, status, payload)
        )

    async def shutdown(self) -> None:
        await self._client.shutdown()
