"""A loopback TCP proxy the fault injector controls: it forwards bytes, and on command cuts every
connection, refuses new ones for a while (a partition), or delays each chunk (a slow link).

It knows nothing of TLS or MQTT: clients verify the hub's certificate end to end through it. The
device SDK dials the proxy as its gateway (the hub's certificate names the proxy's address too);
HTTPS clients, whose SAS tokens name the hub's own address, reach it as an HTTP proxy
(`HTTPS_PROXY`): with `tunnel=True` each connection starts with `CONNECT`, answered 200, and
then carries the TLS bytes to the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

__all__ = ["Proxy"]

log = logging.getLogger(__name__)

_CHUNK = 65536


class Proxy:
    """Forwards `listen_host:listen_port` to `target_host:target_port`.

    Args:
        name: what the fault table calls it (`mqtt`, `rest`).
        listen_host: the proxy's own loopback address.
        listen_port: its port (the same as the target's).
        target_host: the hub's address.
        target_port: the hub's port.
        tunnel: expect an HTTP `CONNECT` first (an HTTPS proxy).
    """

    def __init__(
        self, name: str, listen_host: str, listen_port: int, target_host: str, target_port: int,
        *, tunnel: bool = False,
    ) -> None:  # fmt: skip
        self.name = name
        self.tunnel = tunnel
        self.listen = (listen_host, listen_port)
        self.target = (target_host, target_port)
        self.delay = 0.0
        self._refuse_until = 0.0
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._server: asyncio.Server | None = None
        self.accepted = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, *self.listen, reuse_address=True)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.cut()

    async def cut(self, refuse_for: float = 0.0) -> int:
        """Close every open connection (both sides, abruptly); refuse new ones for `refuse_for`
        seconds. Returns how many connections were cut."""
        self._refuse_until = max(self._refuse_until, time.monotonic() + refuse_for)
        links = list(self._links)
        for client, upstream in links:  # the pumps see their streams end and finish
            _abort(client)
            _abort(upstream)
        await asyncio.sleep(0)
        return len(links)

    def heal(self) -> None:
        """No delay, and accept connections again."""
        self.delay = 0.0
        self._refuse_until = 0.0

    def slow_down(self, delay: float) -> None:
        """Delay every chunk forwarded either way by `delay` seconds (0: no delay)."""
        self.delay = delay

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._refuse_until:
            _abort(writer)
            return
        if self.tunnel:
            try:
                request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            except (OSError, EOFError, TimeoutError, asyncio.LimitOverrunError):
                _abort(writer)
                return
            if not request.startswith(b"CONNECT "):
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                _abort(writer)
                return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _abort(writer)  # the hub is down: the client sees its connection reset
            return
        if self.tunnel:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.accepted += 1
        link = (writer, upstream_writer)
        self._links.add(link)
        try:
            async with asyncio.TaskGroup() as pumps:
                pumps.create_task(self._pump(reader, upstream_writer))
                pumps.create_task(self._pump(upstream_reader, writer))
        except* (OSError, EOFError):
            pass
        finally:
            self._links.discard(link)
            _abort(writer)
            _abort(upstream_writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                raise EOFError
            if self.delay:
                await asyncio.sleep(self.delay)
            writer.write(data)
            await writer.drain()


def _abort(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.transport.abort()
