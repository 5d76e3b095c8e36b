"""The service endpoint's listener: a cap on open connections, and a TLS handshake deadline.

aiohttp closes a connection that has not sent a complete request head within its keep-alive
timeout (counted from the handshake or the previous response, so trickled headers do not extend
it); `ConnectionLimits.https_idle_timeout` sets it. It has no cap on connections, so
`CappedSite` hands each accepted connection to aiohttp only while fewer than
`https_max_connections` are open; past that, the client gets IoT Hub's 503 error body with
`Retry-After` and the connection is closed, before aiohttp allocates anything for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl

from aiohttp import web

from local_hub.limits import ConnectionLimits

__all__ = ["CappedSite"]

log = logging.getLogger(__name__)

_BUSY_BODY = json.dumps(
    {
        "Message": "ErrorCode:ServiceUnavailable;"
        + json.dumps(
            {
                "errorCode": 503001,
                "message": "The hub has too many open connections; retry in a moment.",
            }
        ),
        "ExceptionMessage": "",
    }
).encode()
_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json; charset=utf-8\r\n"
    b"iothub-errorcode: ServiceUnavailable\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)
_BUSY_WAIT = 5.0  # seconds to wait for the refused client's request before closing anyway


class _Busy(asyncio.Protocol):
    """Answers one connection's first bytes with 503 and closes it."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(_BUSY_WAIT, transport.abort)

    def data_received(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(_BUSY_RESPONSE)
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()


class CappedSite(web.BaseSite):
    """An HTTPS site that serves at most `limits.https_max_connections` connections at once."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        limits: ConnectionLimits,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self._limits = limits
        self.refused = 0

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        """The port listened on (the chosen one when 0 was asked for)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None

        def accept() -> asyncio.BaseProtocol:
            if len(server.connections) >= self._limits.https_max_connections:
                self.refused += 1
                if self.refused % 100 == 1:
                    log.warning(
                        "refused HTTPS connections: %d are open, the limit (%d refused so far)",
                        len(server.connections),
                        self.refused,
                    )
                return _Busy()
            return server()

        self._server = await asyncio.get_running_loop().create_server(
            accept,
            self._host,
            self._port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self._limits.tls_handshake_timeout,
            backlog=self._backlog,
            reuse_address=True,
        )
