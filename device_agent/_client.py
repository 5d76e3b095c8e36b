"""The one module that touches `azure-iot-device`: a small seam over its aio clients.

The SDK calls handlers on threads of its own; this seam hands every event to the agent's event
loop with `call_soon_threadsafe`, so the agent's code runs on one loop only.

Refusals become the agent's errors here. The hub refusing the device's credentials, at the first
connect (`CredentialError`) or when the SDK reconnects on its own after the hub dropped it (a
background `UnauthorizedError`, after which the SDK stops reconnecting), is `HubRefused`. A
registration that the provisioning service did not assign is `ProvisioningFailed`; the SDK
shuts its provisioning pipeline down only after an assignment, so `register` shuts it down
itself otherwise (the SDK offers no public call for that), or every refused attempt would leave
a connection and its threads behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.iot.device import MethodResponse, exceptions
from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient
from azure.iot.device.common import transport_exceptions

from device_agent import errors

__all__ = ["DeviceConnection", "MethodCall", "Registration", "register"]

log = logging.getLogger(__name__)


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
        """Connect to the hub.

        Raises:
            HubRefused: the hub refused the credentials (no such identity, disabled, wrong key).
        """
        try:
            await self._client.connect()
        except exceptions.CredentialError:
            raise errors.HubRefused(
                "the hub refused the device's credentials (its identity is deleted or disabled, "
                "or its key is wrong)"
            ) from None

    def on_refused(self, loop: asyncio.AbstractEventLoop, handler: Callable[[], None]) -> None:
        """Call `handler` on `loop` when the hub refuses a reconnection the SDK made on its own."""

        def background(exc: Exception) -> None:
            if isinstance(exc, transport_exceptions.UnauthorizedError | exceptions.CredentialError):
                loop.call_soon_threadsafe(handler)

        self._client.on_background_exception = background

    async def get_twin(self) -> dict[str, Any]:
        """The twin's desired and reported properties.

        Raises:
            HubRefused: the hub dropped the device before it answered and refused it since.
            ConnectionLost: the connection broke before the hub answered (the SDK connects
                again by itself; the read may be tried again).
        """
        try:
            twin: dict[str, Any] = await self._client.get_twin()
        except (exceptions.NoConnectionError, exceptions.CredentialError):
            raise errors.HubRefused(
                "the hub dropped the device before it read its twin (its identity deleted or "
                "disabled, or the connection lost)"
            ) from None
        except (exceptions.ClientError, exceptions.OperationCancelled,
                exceptions.OperationTimeout) as exc:  # fmt: skip
            raise errors.ConnectionLost(
                f"the connection was lost while the device read its twin ({type(exc).__name__})"
            ) from None
        return twin

    async def patch_reported(self, patch: dict[str, Any]) -> None:
        await self._client.patch_twin_reported_properties(patch)

    async def on_desired(
        self, loop: asyncio.AbstractEventLoop, handler: Callable[[dict[str, Any]], None]
    ) -> None:
        """Hand desired patches to `handler` on `loop` (subscribes now).

        Raises:
            HubRefused: the hub dropped the device before the subscription was made.
        """

        def received(patch: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(handler, patch)

        await self._set_handler("on_twin_desired_properties_patch_received", received)

    async def on_method(
        self, loop: asyncio.AbstractEventLoop, handler: Callable[[MethodCall], None]
    ) -> None:
        """Hand direct method requests to `handler` on `loop` (subscribes now).

        Raises:
            HubRefused: the hub dropped the device before the subscription was made.
        """

        def requested(request: Any) -> None:
            loop.call_soon_threadsafe(handler, MethodCall(request))

        await self._set_handler("on_method_request_received", requested)

    async def _set_handler(self, name: str, handler: Callable[..., None]) -> None:
        # The SDK's handler setters subscribe synchronously, waiting on the SDK's own loop (up
        # to its 30 s timeout when the connection is gone): on a worker thread, the agent's
        # loop keeps running meanwhile.
        try:
            await asyncio.to_thread(setattr, self._client, name, handler)
        except exceptions.ClientError:
            raise errors.HubRefused(
                "the hub dropped the device as it subscribed (its identity deleted or disabled, "
                "or the connection lost)"
            ) from None

    async def answer(self, call: MethodCall, status: int, payload: Any) -> None:
        await self._client.send_method_response(
            MethodResponse.create_from_method_request(call.request, status, payload)
        )

    async def shutdown(self) -> None:
        await self._client.shutdown()


@dataclass(frozen=True)
class Registration:
    """What the provisioning service assigned: the hub's host name and the device id there."""

    assigned_hub: str
    device_id: str
    substatus: str


async def register(
    provisioning_host: str, id_scope: str, registration_id: str, symmetric_key: str,
    ca_pem: str | None,
) -> Registration:  # fmt: skip
    """Register with the provisioning service by symmetric key and return the assignment.

    Raises:
        ProvisioningFailed: the service is unreachable, refused the registration (unknown
            registration, wrong key, disabled enrollment) or did not assign the device.
    """
    client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=provisioning_host, registration_id=registration_id,
        id_scope=id_scope, symmetric_key=symmetric_key, server_verification_cert=ca_pem,
    )  # fmt: skip
    assigned = False
    try:
        try:
            result = await client.register()
        except (exceptions.ClientError, exceptions.OperationTimeout) as exc:
            cause = exc.__cause__
            detail = str(cause) if cause is not None and str(cause) else type(exc).__name__
            if "status disabled" in detail:  # the SDK takes DPS's "disabled" for an unknown one
                detail = "its enrollment or enrollment group is disabled"
            raise errors.ProvisioningFailed(
                f"registration {registration_id} at {provisioning_host} failed: {detail}",
                registration_id=registration_id,
            ) from None
        state = result.registration_state
        if result.status != "assigned" or state is None or not state.assigned_hub:
            raise errors.ProvisioningFailed(
                f"registration {registration_id} at {provisioning_host} was not assigned "
                f"(status {result.status})",
                registration_id=registration_id,
            )
        assigned = True
        return Registration(str(state.assigned_hub), str(state.device_id), str(state.sub_status))
    finally:
        if not assigned:
            await _shut_down(client)


async def _shut_down(client: ProvisioningDeviceClient) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def finish() -> None:
        if not done.done():
            done.set_result(None)

    def complete(error: Exception | None = None) -> None:
        loop.call_soon_threadsafe(finish)

    pipeline: Any = client._pipeline  # no public way to end a registration not assigned
    with contextlib.suppress(Exception):
        pipeline.shutdown(callback=complete)
        await asyncio.wait_for(done, 10)
