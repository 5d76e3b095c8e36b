"""The service endpoint's listener: a cap on open connections, and a TLS handshake deadline.

aiohttp closes a connection that has not sent a complete request head within its keep-alive
timeout (counted from the handshake or the previous response, so trickled headers do not extend
it); `ConnectionLimits.https_idle_timeout` sets it. It has no cap on connections, so
`CappedSite` hands each accepted connection to aiohttp only while fewer than
`https_max_connections` are open; past that, the client gets IoT Hub's 503 error body with
`Retry-After` and the connection is closed, before aiohttp allocates anything for it.

Requests aiohttp itself refuses (a malformed request line, a header over 8 KB) are answered in
IoT Hub's error shape too, naming the kind of problem without echoing the request (an over-long
`Authorization` header would otherwise come back, and go to the log, with its signature), and
cost one rate-limited log line instead of a traceback. No response says which server or version
it comes from (`Server: twinfleet-hub`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import weakref

from aiohttp import web

from local_hub import errors
from local_hub.clock import iso
from local_hub.limits import ConnectionLimits
from local_hub.refusals import RefusalLog

__all__ = ["SERVER_NAME", "CappedSite"]

SERVER_NAME = "twinfleet-hub"

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
    b"Server: " + SERVER_NAME.encode() + b"\r\n"
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


def _error_body(exc: errors.HubError) -> web.Response:
    # rest.app.error_response's shape; built here so this module needs nothing above it
    detail = {"errorCode": int(exc.error_code), "message": exc.message, "timestampUtc": iso()}
    body = {"Message": f"ErrorCode:{exc.code_name};{json.dumps(detail)}", "ExceptionMessage": ""}
    return web.Response(
        body=json.dumps(body).encode(),
        status=exc.status,
        content_type="application/json",
        headers={"iothub-errorcode": exc.code_name, "Server": SERVER_NAME},
    )


class _HubRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, with its own error answers in IoT Hub's shape."""

    refusals: RefusalLog | None = None
    transports: weakref.WeakSet[asyncio.BaseTransport] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.transports is not None:
            self.transports.add(transport)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:  # a bug of ours: keep the traceback (the log filter redacts secrets)
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            refusal: errors.HubError = errors.ServerError("The hub failed to handle the request.")
        else:
            problem = type(exc).__name__ if exc is not None else "malformed request"
            if self.refusals is not None:
                self.refusals.refused(f"client {request.remote}", "an HTTP request", problem)
            refusal = errors.BadRequest(f"The HTTP request is malformed ({problem}).")
            refusal.status = status
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send the error")
        response = _error_body(refusal)
        response.force_close()
        return response


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
        refusals: RefusalLog,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self._limits = limits
        self._refusals = refusals
        self.refused = 0
        # Every connection's transport, closing ones included: a TLS close waits for the
        # client's close_notify, which a client that simply leaves never sends.
        self.transports: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self._port}"

    def abort_connections(self) -> None:
        """Drop every connection at once, including those still waiting on a TLS close."""
        for transport in list(self.transports):
            transport.abort()  # type: ignore[attr-defined]

    @property
    def port(self) -> int:
        """The port listened on (the chosen one when 0 was asked for)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        # What web.Server() does, with our handler class. aiohttp offers no public hook for the
        # handler class, so this reads the server's handler options from its one private field.
        options = dict(server._kwargs)

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
            handler = _HubRequestHandler(server, loop=loop, **options)
            handler.refusals = self._refusals
            handler.transports = self.transports
            return handler

        self._server = await loop.create_server(
            accept,
            self._host,
            self._port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self._limits.tls_handshake_timeout,
            backlog=self._backlog,
            reuse_address=True,
        )
