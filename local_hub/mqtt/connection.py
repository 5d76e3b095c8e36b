"""One device's MQTT connection: its writer, its keep-alive and how it ends.

Packets sent in one turn of the event loop go out as one write: a group commit answers a
device's reported patch with a twin response and a PUBACK together, and one TLS record and one
system call for both cost half as much as two (at thousands of round trips a second, the writes
are a large share of the hub's work). Order is kept; a close sends what was queued first.

A connection that sends nothing for 1.5 keep-alive periods is dropped (MQTT 3.1.1). Each packet
only notes the time it came; one timer a connection looks at that time when it fires and, if a
packet came since, sets itself for the new deadline (a timer per packet, as `asyncio.timeout`
around each read would set and cancel, costs more than the packet's twin write).
"""

from __future__ import annotations

import asyncio
import logging

from local_hub.mqtt import codec

__all__ = ["Connection"]

log = logging.getLogger(__name__)


class Connection:
    """A connected, authenticated device.

    Attributes:
        device_id: whose connection this is.
        keepalive: the keep-alive the device asked for, in seconds (0: none).
        replaced: set when a newer connection of the same device took over.
    """

    __slots__ = (
        "_closed", "_heard", "_loop", "_queued", "_timer", "_writer", "device_id", "keepalive",
        "replaced",
    )  # fmt: skip

    def __init__(self, device_id: str, keepalive: int, writer: asyncio.StreamWriter) -> None:
        self.device_id = device_id
        self.keepalive = keepalive
        self.replaced = False
        self._writer = writer
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._queued: list[bytes] = []
        self._heard = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        if keepalive:
            self._timer = self._loop.call_at(self._heard + keepalive * 1.5, self._check_alive)

    @property
    def closed(self) -> bool:
        return self._closed

    def heard(self) -> None:
        """Note that a packet came (the keep-alive deadline moves on)."""
        self._heard = self._loop.time()

    def _check_alive(self) -> None:
        timeout = self.keepalive * 1.5
        due = self._heard + timeout
        if due > self._loop.time():
            self._timer = self._loop.call_at(due, self._check_alive)
            return
        self._timer = None
        log.info("device %s sent nothing for %.0f s (1.5 keep-alive periods): dropping it",
                 self.device_id, timeout)  # fmt: skip
        self.abort()  # the peer is gone or stuck: no TLS goodbye to wait for

    def send(self, packet: codec.Packet) -> None:
        """Queue a packet for the device; it goes out at the end of this loop turn with any
        others queued in it (dropped silently once the connection is closing)."""
        if self._closed or self._writer.is_closing():
            return
        if not self._queued:
            self._loop.call_soon(self._flush)
        self._queued.append(codec.encode(packet))

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        if queued and not self._writer.is_closing():
            self._writer.write(queued[0] if len(queued) == 1 else b"".join(queued))

    async def drain(self) -> None:
        if not self._closed:
            try:
                await self._writer.drain()
            except (ConnectionError, RuntimeError):
                self.close()

    def close(self) -> None:
        if not self._closed:
            self._flush()
            self._closed = True
            self._stop_timer()
            self._writer.close()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def abort(self) -> None:
        """Drop the connection without waiting for the peer (hub shutdown)."""
        self._closed = True
        self._stop_timer()
        self._writer.transport.abort()
