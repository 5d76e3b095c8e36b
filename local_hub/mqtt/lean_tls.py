"""A TLS stream server whose idle connections hold kilobytes, not a quarter megabyte.

CPython 3.11's asyncio TLS transport (`asyncio.sslproto.SSLProtocol`) gives every connection its
own 256 KiB receive buffer (`max_size`), allocated when the connection is made and held until it
closes: 10,000 idle devices pin 2.5 GiB. The bytes read into that buffer are copied into the
connection's `ssl.MemoryBIO` within the same callback (the selector transport calls `get_buffer`,
`recv_into` and `buffer_updated` back to back, with nothing running in between), so one buffer per
thread serves every connection of a selector event loop. `LeanSSLProtocol` does exactly that and
nothing else; the TLS state machine stays the standard library's. On other loops (a proactor keeps
a buffer across an overlapped read) each connection gets a buffer of its own, sized to one TLS
record rather than 256 KiB.

Two queues per connection that are empty nearly always (the TLS protocol's backlog of writes
made during the handshake, the stream's waiters for a full send buffer) are `collections.deque`s,
each holding a 64-slot block from birth: about 1.4 KiB of an idle connection's 26. Both are used
only through operations a list has (append, index 0, `del [0]`, iteration, remove, clear), so
they are lists here, which hold nothing until used.

`start_tls_server` is `asyncio.start_server(..., ssl=context)` built on it.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from asyncio import selector_events, sslproto
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["LeanSSLProtocol", "start_tls_server"]

# Room for one full TLS record (16 KiB of plaintext plus header, padding and tag) and more.
_RECEIVE = 64 * 1024
_OWN = 17 * 1024
_shared = threading.local()

ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _thread_buffer() -> tuple[bytearray, memoryview]:
    found: tuple[bytearray, memoryview] | None = getattr(_shared, "buffer", None)
    if found is None:
        data = bytearray(_RECEIVE)
        found = (data, memoryview(data))
        _shared.buffer = found
    return found


class LeanSSLProtocol(sslproto.SSLProtocol):
    """The standard TLS protocol with a receive buffer shared by the thread's connections."""

    max_size = _OWN  # what the base class allocates per connection; replaced just below

    def __init__(self, loop: asyncio.AbstractEventLoop, *args: Any, **kwargs: Any) -> None:
        super().__init__(loop, *args, **kwargs)
        self._write_backlog: list[bytes] = []  # type: ignore[assignment]
        if isinstance(loop, selector_events.BaseSelectorEventLoop):
            self._ssl_buffer, self._ssl_buffer_view = _thread_buffer()
            self.max_size = _RECEIVE  # type: ignore[misc]


async def start_tls_server(
    client_connected: ClientConnected,
    host: str,
    port: int,
    context: ssl.SSLContext,
    *,
    limit: int = 64 * 1024,
    backlog: int = 1024,
    handshake_timeout: float = 60.0,
) -> asyncio.Server:
    """Serve TLS streams on `host:port`, calling `client_connected(reader, writer)` for each
    connection once its handshake completes (as `asyncio.start_server` does)."""
    loop = asyncio.get_running_loop()

    def make_protocol() -> asyncio.BaseProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        application = asyncio.StreamReaderProtocol(reader, client_connected, loop=loop)
        application._drain_waiters = []  # type: ignore[attr-defined]
        return LeanSSLProtocol(
            loop, application, context, None, server_side=True,
            ssl_handshake_timeout=handshake_timeout,
        )  # fmt: skip

    return await loop.create_server(make_protocol, host, port, backlog=backlog)
