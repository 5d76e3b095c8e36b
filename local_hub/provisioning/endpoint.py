"""The provisioning service's device endpoint: DPS's MQTT protocol over TLS.

A device connects with client id = its registration id and username
`{idScope}/registrations/{registrationId}/?api-version=...`, its password a SAS token for
`{idScope}/registrations/{registrationId}`. It subscribes to `$dps/registrations/res/#`, publishes
its request to `$dps/registrations/PUT/iotdps-register/?$rid={rid}` and polls with
`$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={id}`; answers come on
`$dps/registrations/res/{status}/?$rid={rid}[&retry-after={seconds}]`.

The token is checked when the device registers (a wrong scope is refused at CONNECT), so a
refused attestation is answered with DPS's 401 and error body rather than a dropped connection.
Operations are stored; a service restarted between the register and the poll resumes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import ssl
import time
import urllib.parse
from typing import Any

from local_hub.clock import iso
from local_hub.mqtt import codec
from local_hub.mqtt.connection import Connection
from local_hub.provisioning.registrar import Attested, Refused, Registrar
from local_hub.provisioning.state import ProvisioningStore

__all__ = ["ProvisioningEndpoint"]

log = logging.getLogger(__name__)

MAX_PACKET = 64 * 1024
CONNECT_TIMEOUT = 10.0
RETRY_AFTER = 1
_RESPONSES = "$dps/registrations/res/#"
_REGISTER = "$dps/registrations/PUT/iotdps-register/"
_POLL = "$dps/registrations/GET/iotdps-get-operationstatus/"
_ACCEPTED, _BAD_PROTOCOL, _BAD_CLIENT_ID, _NOT_AUTHORIZED = 0, 1, 2, 5


def _query(topic: str, prefix: str) -> dict[str, str] | None:
    if not topic.startswith(prefix + "?"):
        return None
    pairs = urllib.parse.parse_qsl(topic[len(prefix) + 1 :], keep_blank_values=True)
    return dict(pairs)


class _Device:
    def __init__(self, connection: Connection, registration_id: str, token: str) -> None:
        self.connection = connection
        self.registration_id = registration_id
        self.token = token


class ProvisioningEndpoint:
    """Serves device registrations over MQTT/TLS for one provisioning service."""

    def __init__(
        self,
        store: ProvisioningStore,
        registrar: Registrar,
        ssl_context: ssl.SSLContext,
        *,
        clock: Any = time.time,
    ) -> None:
        self._store = store
        self._registrar = registrar
        self._ssl = ssl_context
        self._clock = clock
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connections: set[Connection] = set()
        self._assigning: dict[str, asyncio.Task[dict[str, Any]]] = {}

    async def start(self, host: str, port: int = 8883) -> None:
        self._server = await asyncio.start_server(self._accept, host, port, ssl=self._ssl)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.abort()
        for task in list(self._tasks) + list(self._assigning.values()):
            task.cancel()
        pending = list(self._tasks) + list(self._assigning.values())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # -- connections -------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        connection: Connection | None = None
        try:
            device = await self._open(reader, writer)
            if device is not None:
                connection = device.connection
                self._connections.add(connection)
                await self._serve(device, reader)
        except codec.MalformedPacket as exc:
            log.warning("closing a provisioning connection after a malformed packet: %s", exc)
        except (TimeoutError, ConnectionError, ssl.SSLError, OSError) as exc:
            log.info("provisioning connection ended: %s", type(exc).__name__)
        except asyncio.CancelledError:
            log.debug("provisioning connection closed as the service stops")
        finally:
            writer.close()
            if connection is not None:
                connection.close()
                self._connections.discard(connection)

    async def _open(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> _Device | None:
        packet = await asyncio.wait_for(codec.read_packet(reader, MAX_PACKET), CONNECT_TIMEOUT)
        if packet is None:
            return None
        if not isinstance(packet, codec.Connect):
            raise codec.MalformedPacket("the first packet must be CONNECT")
        code = self._check_connect(packet)
        if code != _ACCEPTED:
            writer.write(codec.encode(codec.ConnAck(False, code)))
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()
            return None
        connection = Connection(packet.client_id, packet.keepalive, writer)
        connection.send(codec.ConnAck(False, _ACCEPTED))
        token = (packet.password or b"").decode("utf-8", "replace")
        return _Device(connection, packet.client_id, token)

    def _check_connect(self, packet: codec.Connect) -> int:
        if packet.protocol_level != 4:
            return _BAD_PROTOCOL
        registration_id = packet.client_id
        if not registration_id or "/" in registration_id:
            return _BAD_CLIENT_ID
        expected = f"{self._registrar.id_scope}/registrations/{registration_id}/"
        if not (packet.username or "").startswith(expected):
            log.info("refused registration %r: wrong ID scope or registration id", registration_id)
            return _NOT_AUTHORIZED
        return _ACCEPTED

    async def _serve(self, device: _Device, reader: asyncio.StreamReader) -> None:
        connection = device.connection
        while not connection.closed:
            packet = await codec.read_packet(reader, MAX_PACKET)
            if packet is None or isinstance(packet, codec.Disconnect):
                return
            connection.heard()
            if isinstance(packet, codec.Publish):
                if packet.qos == 2:
                    raise codec.MalformedPacket("DPS does not accept QoS 2")
                if packet.qos == 1 and packet.packet_id is not None:
                    connection.send(codec.PubAck(packet.packet_id))
                await self._on_publish(device, packet)
            elif isinstance(packet, codec.Subscribe):
                codes = tuple(min(qos, 1) if f == _RESPONSES else 0x80 for f, qos in packet.topics)
                connection.send(codec.SubAck(packet.packet_id, codes))
            elif isinstance(packet, codec.Unsubscribe):
                connection.send(codec.UnsubAck(packet.packet_id))
            elif isinstance(packet, codec.PingReq):
                connection.send(codec.PingResp())
            elif not isinstance(packet, codec.PubAck):
                raise codec.MalformedPacket(f"a device may not send {type(packet).__name__}")
            await connection.drain()

    # -- requests ----------------------------------------------------------------------------

    def _answer(self, device: _Device, rid: str, status: int, body: dict[str, Any]) -> None:
        topic = f"$dps/registrations/res/{status}/?$rid={urllib.parse.quote(rid, safe='')}"
        if status == 202:
            topic += f"&retry-after={RETRY_AFTER}"
        device.connection.send(codec.Publish(topic, json.dumps(body).encode()))

    def _refuse(self, device: _Device, rid: str, refused: Refused) -> None:
        body = {
            "errorCode": refused.error_code,
            "trackingId": secrets.token_hex(16),
            "message": refused.message,
            "timestampUtc": iso(self._clock()),
        }
        self._answer(device, rid, refused.status, body)

    async def _on_publish(self, device: _Device, packet: codec.Publish) -> None:
        register = _query(packet.topic, _REGISTER)
        poll = _query(packet.topic, _POLL)
        query = register if register is not None else poll
        if query is None or "$rid" not in query:
            log.warning(
                "registration %s published to an unknown topic; closing", device.registration_id
            )
            device.connection.close()
            return
        rid = query["$rid"]
        try:
            if register is not None:
                self._on_register(device, rid, packet.payload)
            else:
                self._on_poll(device, rid, query.get("operationId", ""))
        except Refused as refused:
            self._refuse(device, rid, refused)

    def _on_register(self, device: _Device, rid: str, payload: bytes) -> None:
        try:
            body = json.loads(payload)
        except (ValueError, RecursionError):
            raise Refused(400, 400004, "The registration request body is not JSON.") from None
        if not isinstance(body, dict) or body.get("registrationId") != device.registration_id:
            raise Refused(400, 400004, "The body's registrationId differs from the client id.")
        attested = self._registrar.attest(device.registration_id, device.token, self._clock())
        operation_id = f"5.{secrets.token_hex(8)}.{secrets.token_hex(16)}"
        if not attested.enabled:
            log.info("refused registration %s: its enrollment is disabled", device.registration_id)
            self._answer(device, rid, 200, {
                "operationId": operation_id, "status": "disabled",
                "registrationState": self._registrar.disabled_state(attested),
            })  # fmt: skip
            return
        self._store.add_operation(
            operation_id, device.registration_id, {"payload": body.get("payload")}
        )
        self._start_assignment(operation_id, attested, body.get("payload"))
        self._answer(device, rid, 202, {"operationId": operation_id, "status": "assigning"})

    def _start_assignment(self, operation_id: str, attested: Attested, payload: Any) -> None:
        async def run() -> dict[str, Any]:
            state = await self._registrar.assign(attested, payload)
            self._store.set_operation_status(operation_id, str(state["status"]), state)
            return state

        task = asyncio.get_running_loop().create_task(run())
        self._assigning[operation_id] = task
        task.add_done_callback(lambda _: self._assigning.pop(operation_id, None))

    def _on_poll(self, device: _Device, rid: str, operation_id: str) -> None:
        found = self._store.operation(operation_id)
        if found is None or found[0] != device.registration_id:
            raise Refused(404, 404201, "There is no such registration operation.")
        _, status, result = found
        if status == "assigning":
            if operation_id not in self._assigning:
                # The service restarted between the register and this poll: attest again (the
                # token is this connection's) and carry the operation on.
                attested = self._registrar.attest(
                    device.registration_id, device.token, self._clock()
                )
                self._start_assignment(operation_id, attested, result.get("payload"))
            self._answer(device, rid, 202, {"operationId": operation_id, "status": "assigning"})
            return
        self._answer(device, rid, 200, {
            "operationId": operation_id, "status": status, "registrationState": result,
        })  # fmt: skip
