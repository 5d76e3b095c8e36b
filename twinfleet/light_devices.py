"""Lightweight simulated devices: thousands in one process, over raw MQTT, for scale tests.

The full device agent (an `azure-iot-device` client, a `transitions` machine and a state
directory per device) stays the reference for behaviour; it costs a thread pool and megabytes per
device. A lightweight device is one TLS connection and two small tasks: it speaks IoT Hub's MQTT
(the hub's own packet codec over the lean TLS protocol, one receive buffer per thread) and
follows the twin contract (`patterns.contracts`) as the agent does, without touching a disk:

- on every connect it reads its twin and reconciles (level-triggered, like the agent); desired
  patches trigger the same code;
- a desired `firmware` whose version it does not run is "installed" by reporting each step the
  agent reports, downloading → verifying → applying → rebooting → current, with the campaign id
  echoed (nothing is downloaded: the image is the agent's business, the twin traffic is this);
- a desired `configuration` of a version it has not applied is reported applied, its settings
  echoed; a method call (reboot, factory reset) is answered 200.

Reports of one device go out one at a time, each after the previous one's response, so they land
in order; one refused with a 429 or a 5xx is sent again after a second. A dropped connection is
redialled, and the twin read again, after a second.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from local_hub import tokens
from local_hub.mqtt import codec, lean_tls
from patterns.contracts import configuration, firmware

__all__ = ["HubCredentials", "LightDevice", "LightFleet"]

log = logging.getLogger(__name__)

_PORT = 8883
_RETRY = 1.0
_API = "2021-04-12"
_STEPS = (
    firmware.FirmwareStatus.DOWNLOADING,
    firmware.FirmwareStatus.VERIFYING,
    firmware.FirmwareStatus.APPLYING,
    firmware.FirmwareStatus.REBOOTING,
)
_SUBSCRIPTIONS = (
    ("$iothub/twin/PATCH/properties/desired/#", 1),
    ("$iothub/twin/res/#", 1),
    ("$iothub/methods/POST/#", 1),
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class HubCredentials:
    """What a device needs to reach its hub, from its connection string."""

    device_id: str
    host_name: str
    gateway: str
    key: bytes

    @classmethod
    def parse(cls, connection_string: str) -> HubCredentials:
        """Read `HostName`, `DeviceId`, `SharedAccessKey` and `GatewayHostName` (optional).

        Raises:
            ValueError: a field is missing or the key is not base64.
        """
        fields = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
        missing = [k for k in ("HostName", "DeviceId", "SharedAccessKey") if not fields.get(k)]
        if missing:
            raise ValueError(
                f"The device connection string lacks {', '.join(missing)}; use the one "
                "`twinfleet device show --connection-string` prints."
            )
        try:
            key = base64.b64decode(fields["SharedAccessKey"], validate=True)
        except ValueError:
            raise ValueError(
                "The device connection string's SharedAccessKey is not base64."
            ) from None
        host = fields["HostName"]
        return cls(fields["DeviceId"], host, fields.get("GatewayHostName") or host, key)


def _merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """JSON merge patch, as the hub applies it (null deletes)."""
    for name, value in patch.items():
        if name.startswith("$"):
            continue
        if value is None:
            target.pop(name, None)
        elif isinstance(value, dict):
            child = target.get(name)
            if not isinstance(child, dict):
                child = target[name] = {}
            _merge(child, value)
        else:
            target[name] = value


class _Stream(asyncio.StreamReaderProtocol):
    """A stream protocol that keeps the (TLS) transport it was given."""

    transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.transport = transport  # type: ignore[assignment]


class LightDevice:
    """One lightweight simulated device (see the module's docstring)."""

    __slots__ = (
        "_desired",
        "_events",
        "_pending",
        "_rid",
        "_writer",
        "configuration_version",
        "connected",
        "context",
        "credentials",
        "firmware",
        "reports",
    )  # fmt: skip

    def __init__(self, credentials: HubCredentials, context: ssl.SSLContext, initial_version: str
                 ) -> None:  # fmt: skip
        self.credentials = credentials
        self.context = context
        self.firmware = firmware.FirmwareReported(current_version=initial_version)
        self.configuration_version: int | None = None
        self.connected = asyncio.Event()
        self.reports = 0  # reported patches acknowledged (for benchmarks)
        self._desired: dict[str, Any] = {}
        self._events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._pending: dict[str, asyncio.Future[int]] = {}
        self._rid = 0
        self._writer: asyncio.StreamWriter | None = None

    async def run(self, source: str | None = None) -> None:
        """Connect, reconcile and serve until cancelled; redial after a lost connection."""
        while True:
            try:
                await self._session(source)
            except (OSError, EOFError, asyncio.IncompleteReadError, codec.MalformedPacket,
                    ConnectionError) as exc:  # fmt: skip
                log.debug("device %s lost its connection: %s", self.credentials.device_id, exc)
            self.connected.clear()
            await asyncio.sleep(_RETRY)

    async def _session(self, source: str | None) -> None:
        loop = asyncio.get_running_loop()
        creds = self.credentials
        reader = asyncio.StreamReader(limit=1 << 20, loop=loop)
        stream = _Stream(reader, loop=loop)
        handshake: asyncio.Future[Any] = loop.create_future()
        protocol = lean_tls.LeanSSLProtocol(
            loop, stream, self.context, handshake, server_side=False,
            server_hostname=creds.gateway,
        )  # fmt: skip
        transport, _ = await loop.create_connection(
            lambda: protocol, creds.gateway, _PORT, local_addr=(source, 0) if source else None
        )
        worker: asyncio.Task[None] | None = None
        try:
            await handshake
            if stream.transport is None:
                raise ConnectionError("the TLS handshake ended without a connection")
            self._writer = writer = asyncio.StreamWriter(stream.transport, stream, reader, loop)
            resource = f"{creds.host_name}/devices/{creds.device_id}"
            token = tokens.make_sas_token(resource, creds.key, int(time.time()) + 24 * 3600)
            username = f"{creds.host_name}/{creds.device_id}/?api-version={_API}"
            writer.write(codec.encode(codec.Connect(creds.device_id, 300, False, username,
                                                    token.encode())))  # fmt: skip
            ack = await codec.read_packet(reader, 1 << 20)
            if not isinstance(ack, codec.ConnAck) or ack.return_code != 0:
                raise ConnectionError(f"the hub refused {creds.device_id}: {ack}")
            writer.write(codec.encode(codec.Subscribe(1, _SUBSCRIPTIONS)))
            worker = asyncio.create_task(self._work())
            await self._events.put(("twin", None))
            while (packet := await codec.read_packet(reader, 1 << 20)) is not None:
                if isinstance(packet, codec.Publish):
                    self._received(packet)
                elif isinstance(packet, codec.SubAck):
                    self.connected.set()
        finally:
            if worker is not None:
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
            for future in self._pending.values():
                future.cancel()
            self._pending.clear()
            self._events = asyncio.Queue()
            self._writer = None
            transport.abort()

    def _send(self, topic: str, body: bytes, qos: int = 0) -> None:
        if self._writer is None:
            raise ConnectionError("not connected")
        packet_id = None
        if qos:
            self._rid += 1
            packet_id = self._rid % 65535 + 1
        self._writer.write(codec.encode(codec.Publish(topic, body, qos, packet_id)))

    def _received(self, packet: codec.Publish) -> None:
        if packet.qos and packet.packet_id is not None and self._writer is not None:
            self._writer.write(codec.encode(codec.PubAck(packet.packet_id)))
        topic = packet.topic
        if topic.startswith("$iothub/twin/res/"):
            status, _, query = topic[len("$iothub/twin/res/") :].partition("/?")
            rid = urllib.parse.parse_qs(query).get("$rid", [""])[0]
            future = self._pending.pop(rid, None)
            if future is not None and not future.done():
                if rid.startswith("g") and status == "200":
                    self._events.put_nowait(("whole", json.loads(packet.payload or b"{}")))
                future.set_result(int(status))
        elif topic.startswith("$iothub/twin/PATCH/properties/desired/"):
            self._events.put_nowait(("patch", json.loads(packet.payload or b"{}")))
        elif topic.startswith("$iothub/methods/POST/"):
            rid = topic.rpartition("$rid=")[2]
            self._send(f"$iothub/methods/res/200/?$rid={rid}", b"{}")

    async def _request(self, kind: str, topic: str, body: bytes) -> int:
        """Send a twin request and wait for its status (ids: `g...` reads, `r...` reports)."""
        self._rid += 1
        rid = f"{kind}{self._rid}"
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        self._send(topic.format(rid=rid), body)
        return await future

    async def _report(self, patch: dict[str, Any]) -> None:
        body = json.dumps(patch).encode()
        while True:
            status = await self._request("r", "$iothub/twin/PATCH/properties/reported/?$rid={rid}",
                                         body)  # fmt: skip
            if status < 300:
                self.reports += 1
                return
            if status != 429 and status < 500:
                log.warning("device %s: the hub refused a report (%d)",
                            self.credentials.device_id, status)  # fmt: skip
                return
            await asyncio.sleep(_RETRY)

    async def _work(self) -> None:
        """Reconcile after each event, one at a time (reports therefore land in order)."""
        while True:
            kind, body = await self._events.get()
            if kind == "twin":
                if await self._request("g", "$iothub/twin/GET/?$rid={rid}", b"") != 200:
                    await asyncio.sleep(_RETRY)
                    self._events.put_nowait(("twin", None))
                continue
            if kind == "whole":
                self._desired = {}
                _merge(self._desired, body.get("desired", {}))
                await self._adopt(body.get("reported", {}))
            else:
                _merge(self._desired, body)
            await self._reconcile()

    async def _adopt(self, reported: dict[str, Any]) -> None:
        """Take what the twin says this device runs (a redialled device keeps its state)."""
        try:
            known = firmware.FirmwareReported.model_validate(reported.get(firmware.SECTION))
        except ValidationError:
            await self._report({firmware.SECTION: self.firmware.wire()})
        else:
            if known.status == firmware.FirmwareStatus.CURRENT:
                self.firmware = known
        applied = reported.get(configuration.SECTION)
        if isinstance(applied, dict) and isinstance(applied.get("version"), int):
            self.configuration_version = applied["version"]

    async def _reconcile(self) -> None:
        if firmware.SECTION in self._desired:
            await self._reconcile_firmware(self._desired[firmware.SECTION])
        if configuration.SECTION in self._desired:
            await self._reconcile_configuration(self._desired[configuration.SECTION])

    async def _reconcile_firmware(self, section: Any) -> None:
        try:
            wanted = firmware.FirmwareDesired.model_validate(section)
        except ValidationError:
            return  # the agent reports nothing for a section it cannot read either
        now = self.firmware
        if now.current_version == wanted.version and now.status == firmware.FirmwareStatus.CURRENT:
            return
        started = _now()
        for step in _STEPS:
            self.firmware = firmware.FirmwareReported(
                current_version=now.current_version, pending_version=wanted.version, status=step,
                last_start_time=started, campaign_id=wanted.campaign_id,
            )  # fmt: skip
            await self._report({firmware.SECTION: self.firmware.wire()})
        self.firmware = firmware.FirmwareReported(
            current_version=wanted.version, status=firmware.FirmwareStatus.CURRENT,
            last_start_time=started, last_end_time=_now(), campaign_id=wanted.campaign_id,
        )  # fmt: skip
        await self._report({firmware.SECTION: self.firmware.wire()})

    async def _reconcile_configuration(self, section: Any) -> None:
        try:
            wanted = configuration.ConfigurationDesired.model_validate(section)
        except ValidationError:
            return
        if wanted.version == self.configuration_version:
            return
        applied = configuration.ConfigurationReported(
            version=wanted.version, status=configuration.ConfigurationStatus.APPLIED,
            settings=wanted.settings, campaign_id=wanted.campaign_id,
        )  # fmt: skip
        await self._report({configuration.SECTION: applied.wire()})
        self.configuration_version = wanted.version


class LightFleet:
    """Many lightweight devices on one event loop.

    Args:
        connection_strings: one device connection string per device.
        ca_file: the CA certificate the hub's TLS certificate chains to.
        initial_version: the firmware version every device starts with.
        sources: local addresses to dial from, in turn (10,000 connections to one address and
            port need more than one source address's ephemeral ports).
    """

    def __init__(self, connection_strings: Sequence[str], ca_file: str, *,
                 initial_version: str = "1.0.0", sources: Sequence[str] = ()) -> None:  # fmt: skip
        context = ssl.create_default_context(cafile=ca_file)
        self.devices = [
            LightDevice(HubCredentials.parse(text), context, initial_version)
            for text in connection_strings
        ]
        self._sources = list(sources)

    async def run(self, *, concurrency: int = 64,
                  on_ready: Callable[[], Awaitable[None] | None] | None = None
                  ) -> None:  # fmt: skip
        """Run every device until cancelled, dialling `concurrency` at a time; `on_ready` is
        called once every device has connected and subscribed."""
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int, device: LightDevice) -> None:
            source = self._sources[index % len(self._sources)] if self._sources else None
            async with gate:
                task = asyncio.create_task(device.run(source))
                await device.connected.wait()
            await task

        tasks = [asyncio.create_task(one(i, d)) for i, d in enumerate(self.devices)]
        try:
            await asyncio.gather(*(d.connected.wait() for d in self.devices))
            if on_ready is not None:
                result = on_ready()
                if result is not None:
                    await result
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
