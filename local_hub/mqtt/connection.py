"""One device's MQTT connection: its writer, its keep-alive and how it ends."""

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

    __slots__ = ("_closed", "_writer", "device_id", "keepalive", "replaced")

    def __init__(self, device_id: str, keepalive: int, writer: asyncio.StreamWriter) -> None:
        self.device_id = device_id
        self.keepalive = keepalive
        self.replaced = False
        self._writer = writer
        self._closed = False

    @property
    def read_timeout(self) -> float | None:
        """MQTT 3.1.1: the server closes after 1.5 keep-alive periods without a packet."""
        return self.keepalive * 1.5 if self.keepalive else None

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, packet: codec.Packet) -> None:
        """Queue a packet for the device (dropped silently once the connection is closing)."""
        if self._closed or self._writer.is_closing():
            return
        self._writer.write(codec.encode(packet))

    async def drain(self) -> None:
        if not self._closed:
            try:
                await self._writer.drain()
            except (ConnectionError, RuntimeError):
                self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.close()

    def abort(self) -> None:
        """Drop the connection without waiting for the peer (hub shutdown)."""
        self._closed = True
        self._writer.transport.abort()
