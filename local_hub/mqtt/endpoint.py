"""The device endpoint: IoT Hub's MQTT 3.1.1 protocol over TLS, as `azure-iot-device` speaks it.

Sessions persist per device, not per connection: the SDK connects with clean_session=0 and never
subscribes again after a reconnect (its SAS renewal is a DISCONNECT and a new CONNECT), so the
subscriptions a device made are stored with its identity and restored on every connect, with
CONNACK's session-present flag set. Every twin request gets an answer (the SDK has no timeout on
them), and a reported patch re-sent with the same `$rid` (paho re-sends unacknowledged QoS 1
publishes with DUP after a reconnect) is answered again without being applied twice. A PUBACK or
twin response is sent only after the change is durable in the store: changes join the store's
group commit for the current loop turn, and the answers go out when it has committed.

Everything a device sends is untrusted. A payload is parsed with `jsonlimits` (size, depth of
arrays and objects, number length, valid Unicode) before anything recurses into it, and a refusal
is answered the protocol's way: a twin request gets a twin response with status 400 whose body
names the problem, a refused method response fails the service call waiting for it with the
same sentence. A `$rid` longer than `RID_LIMIT` is refused too (echoed only if the response
topic can still hold it). The connection stays up, and the log gets at most a few lines per
device per minute (`RefusalLog`).

Before a device is authenticated it costs as little as possible: its CONNECT may be at most
`ConnectionLimits.mqtt_connect_max_bytes` (a real one is a few hundred bytes), must arrive within
`mqtt_connect_timeout`, and one address may hold at most `mqtt_unauthenticated_per_source`
connections that have not yet been accepted; more are closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import ssl
import time
from collections import Counter, OrderedDict
from typing import Any

import jsonlimits
from local_hub import errors, events, quotas, registry, tokens
from local_hub.limits import DEFAULT_CONNECTION_LIMITS, ConnectionLimits
from local_hub.mqtt import codec, lean_tls, throttling, topics
from local_hub.mqtt.connection import Connection
from local_hub.refusals import RefusalLog

__all__ = ["DeviceEndpoint"]

log = logging.getLogger(__name__)

MAX_PACKET = 512 * 1024
_RID_MEMORY = 64
RID_LIMIT = 128  # the SDK sends a uuid4 (36 characters)
PAYLOAD_LIMITS = jsonlimits.Limits(max_bytes=MAX_PACKET, max_depth=64, max_number_chars=100)
_ACCEPTED, _BAD_PROTOCOL, _BAD_CLIENT_ID, _NOT_AUTHORIZED = 0, 1, 2, 5


def _no_op(_version: int) -> None:
    """Nothing more to do once a reported patch is durable (the answer is queued after it)."""


class DeviceEndpoint:
    """Serves devices over MQTT and lets the service side reach connected devices."""

    def __init__(
        self,
        hub_registry: registry.Registry,
        ssl_context: ssl.SSLContext,
        *,
        host_name: str,
        address: str | None = None,
        clock: Any = time.time,
        limits: ConnectionLimits = DEFAULT_CONNECTION_LIMITS,
        quotas: quotas.Quotas | None = None,
    ) -> None:
        self._quotas = quotas
        self._registry = hub_registry
        self._limits = limits
        self._unauthenticated: Counter[str] = Counter()
        self._ssl = ssl_context
        # A device names the hub by its host name, or (having only the service connection
        # string's HostName to go by, as on Azure) by the address it listens on.
        self._host_names = (host_name, address) if address else (host_name,)
        self._clock = clock
        self._server: asyncio.Server | None = None
        self._connections: dict[str, Connection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()
        self._pending: dict[str, tuple[str, asyncio.Future[tuple[int, Any]]]] = {}
        self._rids = itertools.count(1)
        self._answered: dict[str, OrderedDict[str, tuple[str, bytes]]] = {}
        self._refusals = RefusalLog(log)
        hub_registry.add_listener(self._on_event)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str, port: int = 8883) -> None:
        """Listen for devices on `host:port` (8883 is the SDK's fixed port)."""
        self._server = await lean_tls.start_tls_server(
            self._accept,
            host,
            port,
            self._ssl,
            handshake_timeout=self._limits.tls_handshake_timeout,
        )

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and close every device connection."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections.values()):
            connection.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # -- what the service side uses --------------------------------------------------------

    def is_connected(self, device_id: str) -> bool:
        return device_id in self._connections

    def connected_count(self) -> int:
        return len(self._connections)

    async def _wait_for(self, predicate: Any, timeout: float) -> bool:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
            except TimeoutError:
                return bool(predicate())
        return True

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        self._spawn(notify())

    def _listens_for_methods(self, device_id: str) -> bool:
        device = self._registry.get_device(device_id)
        return (
            device_id in self._connections
            and device is not None
            and topics.METHODS_FILTER in device.subscriptions
        )

    async def invoke_method(
        self,
        device_id: str,
        method: str,
        payload: Any,
        *,
        connect_timeout: float,
        response_timeout: float,
    ) -> tuple[int, Any]:
        """Call a direct method and return the device's (status, payload).

        Raises:
            DeviceNotFound: no such device.
            DeviceNotOnline: not connected and subscribed to methods within `connect_timeout`.
            GatewayTimeout: no response within `response_timeout`.
        """
        if self._registry.get_device(device_id) is None:
            raise errors.DeviceNotFound(f"Device {device_id!r} is not registered on this hub.")
        ready = await self._wait_for(lambda: self._listens_for_methods(device_id), connect_timeout)
        if not ready:
            raise errors.DeviceNotOnline(
                f"Device {device_id!r} is not connected and listening for direct methods."
            )
        rid = format(next(self._rids), "x")
        future: asyncio.Future[tuple[int, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = (device_id, future)
        body = json.dumps(payload).encode()
        self._connections[device_id].send(
            codec.Publish(topics.method_request_topic(method, rid), body)
        )
        try:
            return await asyncio.wait_for(future, response_timeout)
        except TimeoutError:
            raise errors.GatewayTimeout(
                f"Device {device_id!r} did not answer method {method!r} within "
                f"{response_timeout:g} s."
            ) from None
        finally:
            self._pending.pop(rid, None)

    # -- registry events -------------------------------------------------------------------

    def _on_event(self, event: events.TwinEvent) -> None:
        if isinstance(event, events.DesiredPatched):
            connection = self._connections.get(event.device_id)
            device = self._registry.get_device(event.device_id)
            if connection and device and topics.DESIRED_FILTER in device.subscriptions:
                version = int(event.patch["$version"])
                body = json.dumps(event.patch).encode()
                connection.send(codec.Publish(topics.desired_patch_topic(version), body))
        elif isinstance(event, events.DeviceDeleted) or (
            isinstance(event, events.DeviceStatusChanged) and event.status == "disabled"
        ):
            self._answered.pop(event.device_id, None)
            connection = self._connections.get(event.device_id)
            if connection is not None:
                self._closed(connection)

    # -- connections -----------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        connection: Connection | None = None
        peer = writer.get_extra_info("peername")
        source = str(peer[0]) if isinstance(peer, tuple) else "unknown"
        try:
            if self._unauthenticated[source] >= self._limits.mqtt_unauthenticated_per_source:
                self._refusals.refused(
                    f"address {source}",
                    "a connection",
                    f"it already has {self._unauthenticated[source]} connections "
                    "that have not authenticated",
                )
                return
            self._unauthenticated[source] += 1
            try:
                connection = await self._open(reader, writer)
            finally:
                self._unauthenticated[source] -= 1
                if not self._unauthenticated[source]:
                    del self._unauthenticated[source]
            if connection is not None:
                await self._serve(connection, reader)
        except codec.MalformedPacket as exc:
            log.warning("closing a device connection after a malformed packet: %s", exc)
        except (TimeoutError, ConnectionError, ssl.SSLError, OSError) as exc:
            log.info("device connection ended: %s", type(exc).__name__)
        except asyncio.CancelledError:
            # The endpoint is closing. asyncio's stream callback reads `task.exception()` of a
            # finished handler, which raises for a cancelled one and logs a traceback per device
            # (CPython 3.11), so the handler ends normally: the task was ours to stop.
            log.debug("device connection closed as the hub stops")
        finally:
            writer.close()
            if connection is not None:
                self._closed(connection)

    async def _open(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Connection | None:
        packet = await asyncio.wait_for(
            codec.read_packet(reader, self._limits.mqtt_connect_max_bytes),
            self._limits.mqtt_connect_timeout,
        )
        if packet is None:
            return None
        if not isinstance(packet, codec.Connect):
            raise codec.MalformedPacket("the first packet must be CONNECT")
        code, device = self._authenticate(packet)
        if code != _ACCEPTED or device is None:
            writer.write(codec.encode(codec.ConnAck(False, code)))
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()
            return None
        device_id = device.device_id
        if self._quotas is not None and not await throttling.admit_connect(self._quotas, device_id):
            writer.write(codec.encode(codec.ConnAck(False, throttling.SERVER_UNAVAILABLE)))
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()
            return None
        if packet.clean_session:
            self._registry.save_subscriptions(device_id, {})
        session_present = bool(device.subscriptions) and not packet.clean_session
        previous = self._connections.get(device_id)
        if previous is not None:
            previous.replaced = True
            previous.close()
        connection = Connection(device_id, packet.keepalive, writer)
        self._connections[device_id] = connection
        connection.send(codec.ConnAck(session_present, _ACCEPTED))
        self._registry.set_connected(device_id, True)
        log.info("device %s connected", device_id)
        self._notify()
        return connection

    def _authenticate(self, packet: codec.Connect) -> tuple[int, registry.Device | None]:
        if packet.protocol_level != 4:
            return _BAD_PROTOCOL, None
        device_id = packet.client_id
        device = self._registry.get_device(device_id) if device_id else None
        if not device_id or "/" in device_id:
            return _BAD_CLIENT_ID, None
        username = packet.username or ""
        host = next((h for h in self._host_names if username.startswith(f"{h}/{device_id}/")), None)
        if device is None or host is None:
            log.info("refused device %r: unknown device or wrong hub name", device_id)
            return _NOT_AUTHORIZED, None
        if not device.enabled:
            log.info("refused device %s: it is disabled", device_id)
            return _NOT_AUTHORIZED, None
        try:
            tokens.verify_sas_token(
                (packet.password or b"").decode("utf-8", "replace"),
                resource=f"{host}/devices/{device_id}",
                keys=device.keys,
                now=self._clock(),
            )
        except errors.Unauthorized as exc:
            log.info("refused device %s: %s", device_id, exc.message)
            return _NOT_AUTHORIZED, None
        return _ACCEPTED, device

    async def _serve(self, connection: Connection, reader: asyncio.StreamReader) -> None:
        while not connection.closed:
            packet = await codec.read_packet(reader, MAX_PACKET)
            if packet is None or isinstance(packet, codec.Disconnect):
                return
            connection.heard()
            self._registry.record_activity(connection.device_id)
            if isinstance(packet, codec.Publish):
                if self._quotas is None or await throttling.admit_publish(
                    self._quotas, connection, packet
                ):
                    self._on_publish(connection, packet)
            elif isinstance(packet, codec.Subscribe):
                self._on_subscribe(connection, packet)
            elif isinstance(packet, codec.Unsubscribe):
                self._on_unsubscribe(connection, packet)
            elif isinstance(packet, codec.PingReq):
                connection.send(codec.PingResp())
            elif isinstance(packet, codec.PubAck):
                pass
            else:
                raise codec.MalformedPacket(f"a device may not send {type(packet).__name__}")
            await connection.drain()

    def _closed(self, connection: Connection) -> None:
        connection.close()
        if connection.replaced or self._connections.get(connection.device_id) is not connection:
            return
        del self._connections[connection.device_id]
        self._registry.set_connected(connection.device_id, False)
        log.info("device %s disconnected", connection.device_id)
        self._notify()

    # -- packets ---------------------------------------------------------------------------

    def _on_subscribe(self, connection: Connection, packet: codec.Subscribe) -> None:
        device_id = connection.device_id
        subscriptions = self._registry.load_subscriptions(device_id)
        codes = []
        for topic_filter, qos in packet.topics:
            if topics.allowed_filter(topic_filter, device_id):
                granted = min(qos, 1)
                subscriptions[topic_filter] = granted
                codes.append(granted)
            else:
                codes.append(0x80)
        self._registry.save_subscriptions(device_id, subscriptions)
        suback = codec.SubAck(packet.packet_id, tuple(codes))

        def durable() -> None:
            connection.send(suback)
            self._notify()

        self._registry.when_durable(durable)

    def _on_unsubscribe(self, connection: Connection, packet: codec.Unsubscribe) -> None:
        subscriptions = self._registry.load_subscriptions(connection.device_id)
        for topic_filter in packet.topics:
            subscriptions.pop(topic_filter, None)
        self._registry.save_subscriptions(connection.device_id, subscriptions)
        unsuback = codec.UnsubAck(packet.packet_id)
        self._registry.when_durable(lambda: connection.send(unsuback))

    def _on_publish(self, connection: Connection, packet: codec.Publish) -> None:
        if packet.qos == 2:
            raise codec.MalformedPacket("IoT Hub does not accept QoS 2")
        device_id = connection.device_id
        request = topics.parse_device_topic(packet.topic, device_id)
        if request is None:
            log.warning("device %s published to unknown topic; disconnecting", device_id)
            connection.close()
            return
        if isinstance(request, topics.TwinGet | topics.ReportedPatch) and (
            len(request.rid) > RID_LIMIT
        ):
            self._refuse_rid(connection, request.rid)
        elif isinstance(request, topics.TwinGet):
            self._answer_twin_get(connection, request.rid)
        elif isinstance(request, topics.ReportedPatch):
            self._answer_reported(connection, request.rid, packet.payload)
        elif isinstance(request, topics.MethodResponse):
            self._on_method_response(device_id, request, packet.payload)
        else:
            self._registry.add_telemetry(device_id, request.properties, packet.payload)
        if packet.qos == 1 and packet.packet_id is not None:
            # After the group commit that holds this packet's change (and any before it).
            puback = codec.PubAck(packet.packet_id)
            self._registry.when_durable(lambda: connection.send(puback))

    def _refuse_rid(self, connection: Connection, rid: str) -> None:
        reason = f"its $rid has {len(rid)} characters; at most {RID_LIMIT} are allowed"
        self._refusals.refused(f"device {connection.device_id}", "a twin request", reason)
        body = json.dumps({"errorCode": 400004, "message": f"The twin request {reason}."})
        topic = topics.twin_response_topic(400, rid)
        if len(topic.encode()) > codec.MAX_TOPIC:
            topic = topics.twin_response_topic(400, "")
        connection.send(codec.Publish(topic, body.encode()))

    def _answer_twin_get(self, connection: Connection, rid: str) -> None:
        def answer() -> None:  # once what the device changed before is durable
            if self._registry.get_device(connection.device_id) is None:
                return
            properties = self._registry.twin_properties(connection.device_id)
            body = json.dumps(properties).encode()
            connection.send(codec.Publish(topics.twin_response_topic(200, rid), body))

        self._registry.when_durable(answer)

    def _answer_reported(self, connection: Connection, rid: str, payload: bytes) -> None:
        answered = self._answered.setdefault(connection.device_id, OrderedDict())
        if rid in answered:
            topic, body = answered[rid]
        else:
            topic, body = self._apply_reported(connection.device_id, rid, payload)
            answered[rid] = (topic, body)
            while len(answered) > _RID_MEMORY:
                answered.popitem(last=False)
        # Answered once the patch is durable (a re-sent rid: once its first sending is).
        response = codec.Publish(topic, body)
        self._registry.when_durable(lambda: connection.send(response))

    def _apply_reported(self, device_id: str, rid: str, payload: bytes) -> tuple[str, bytes]:
        try:
            try:
                patch = jsonlimits.loads(payload, PAYLOAD_LIMITS)
            except jsonlimits.JSONRefused as exc:
                self._refusals.refused(f"device {device_id}", "a reported patch", exc.reason)
                raise errors.BadRequest(f"The reported patch was refused: {exc.reason}.") from None
            version = self._registry.patch_reported(device_id, patch, on_durable=_no_op)
        except errors.HubError as exc:
            body = json.dumps({"errorCode": int(exc.error_code), "message": exc.message})
            return topics.twin_response_topic(exc.status, rid), body.encode()
        return topics.twin_response_topic(204, rid, version), b""

    def _on_method_response(
        self, device_id: str, response: topics.MethodResponse, payload: bytes
    ) -> None:
        pending = self._pending.get(response.rid)
        if pending is None or pending[0] != device_id or pending[1].done():
            return
        try:
            value: Any = jsonlimits.loads(payload, PAYLOAD_LIMITS) if payload.strip() else None
        except jsonlimits.JSONRefused as exc:
            self._refusals.refused(f"device {device_id}", "a method response", exc.reason)
            pending[1].set_exception(
                errors.BadRequest(
                    f"Device {device_id!r} answered the method with a payload the hub refused: "
                    f"{exc.reason}."
                )
            )
            return
        pending[1].set_result((response.status, value))
