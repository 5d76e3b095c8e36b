"""The lean TLS server: many connections share one receive buffer and every byte still arrives
intact and in order, however their reads interleave."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
from pathlib import Path

from local_hub import certs
from local_hub.mqtt import lean_tls


def _contexts(tmp_path: Path, host: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    paths = certs.ensure_certificates(tmp_path / "tls", [host])
    client = ssl.create_default_context(cafile=str(paths.ca_cert))
    return certs.server_ssl_context(paths), client


def test_interleaved_connections_share_a_buffer_and_lose_no_byte(
    tmp_path: Path, loopback: str
) -> None:
    server_context, client_context = _contexts(tmp_path, loopback)
    protocols: list[lean_tls.LeanSSLProtocol] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        protocols.append(writer.transport._ssl_protocol)  # type: ignore[attr-defined]
        digest = hashlib.sha256()
        left = int.from_bytes(await reader.readexactly(8), "big")
        while left:
            chunk = await reader.read(min(left, 7000))
            if not chunk:
                break
            left -= len(chunk)
            digest.update(chunk)
            writer.write(chunk)
            await writer.drain()
        writer.write(digest.digest())
        await writer.drain()
        writer.close()

    async def client(payload: bytes, port: int) -> tuple[bytes, bytes]:
        reader, writer = await asyncio.open_connection(
            loopback, port, ssl=client_context, server_hostname=loopback
        )
        writer.write(len(payload).to_bytes(8, "big"))
        for start in range(0, len(payload), 50_000):
            writer.write(payload[start : start + 50_000])
            await writer.drain()
        echoed = await reader.readexactly(len(payload))
        digest = await reader.readexactly(32)
        writer.close()
        return echoed, digest

    async def run() -> None:
        server = await lean_tls.start_tls_server(echo, loopback, 0, server_context)
        port = server.sockets[0].getsockname()[1]
        payloads = [os.urandom(150_000 + 997 * i) for i in range(12)]
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(client(p, port) for p in payloads)), 60
            )
        finally:
            server.close()
            await server.wait_closed()
        for payload, (echoed, digest) in zip(payloads, results, strict=True):
            assert echoed == payload
            assert digest == hashlib.sha256(payload).digest()
        # Twelve TLS connections, one receive buffer among them (the stock one is 256 KiB each).
        assert len(protocols) == 12
        assert all(isinstance(p, lean_tls.LeanSSLProtocol) for p in protocols)
        assert len({id(p._ssl_buffer) for p in protocols}) == 1

    asyncio.run(run())
