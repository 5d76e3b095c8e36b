"""What the scale benchmarks share: many lean TLS MQTT clients, a pre-filled hub, mosquitto.

The clients speak MQTT 3.1.1 over TLS with the hub's own codec and the lean TLS protocol (one
receive buffer per thread), so one process holds 10,000 of them. The same client code talks to
the hub and to mosquitto; only the address and the CONNECT's password differ.
"""

from __future__ import annotations

import asyncio
import base64
import os
import resource
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from local_hub import registry, store, tokens
from local_hub.clock import Clock
from local_hub.mqtt import codec, lean_tls

__all__ = [
    "MOSQUITTO",
    "LeanClient",
    "fill_hub",
    "mosquitto_process",
    "raise_fd_limit",
]

MOSQUITTO = "/usr/sbin/mosquitto"


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def fill_hub(
    data_dir: Path, count: int, prefix: str = "scale", tags: dict[int, dict[str, Any]] | None = None
) -> dict[str, str]:
    """Register `count` devices in a hub's data directory before it starts (one transaction),
    with `tags[i]` on device i where given; returns their keys by device id."""
    import time as _time

    clock: Clock = _time.time
    db = store.Store(data_dir / "hub.db")
    reg = registry.Registry(db, clock=clock)
    keys: dict[str, str] = {}
    db.begin()
    for i in range(count):
        identity = reg.create_device({"deviceId": f"{prefix}-{i:06d}"})
        if tags and i in tags:
            reg.update_twin(identity["deviceId"], {"tags": tags[i]}, None)
        keys[identity["deviceId"]] = identity["authentication"]["symmetricKey"]["primaryKey"]
    db.commit()
    db.close()
    return keys


class _Stream(asyncio.StreamReaderProtocol):
    transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.transport = transport  # type: ignore[assignment]


class LeanClient:
    """One MQTT client over TLS; `connect` sends CONNECT and waits for CONNACK."""

    __slots__ = ("reader", "writer")

    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(
        self, host: str, port: int, context: ssl.SSLContext, client_id: str,
        username: str, password: bytes, *, source: str | None = None, keepalive: int = 300,
    ) -> None:  # fmt: skip
        loop = asyncio.get_running_loop()
        self.reader = asyncio.StreamReader(limit=1 << 20, loop=loop)
        stream = _Stream(self.reader, loop=loop)
        handshake = loop.create_future()
        protocol = lean_tls.LeanSSLProtocol(
            loop, stream, context, handshake, server_side=False, server_hostname=host
        )
        await loop.create_connection(
            lambda: protocol, host, port, local_addr=(source, 0) if source else None
        )
        await handshake
        assert stream.transport is not None
        self.writer = asyncio.StreamWriter(stream.transport, stream, self.reader, loop)
        self.send(codec.Connect(client_id, keepalive, False, username, password))
        ack = await self.receive()
        if not isinstance(ack, codec.ConnAck) or ack.return_code != 0:
            raise RuntimeError(f"{client_id} was refused: {ack}")

    def send(self, packet: codec.Packet) -> None:
        assert self.writer is not None
        self.writer.write(codec.encode(packet))

    async def receive(self) -> codec.Packet | None:
        assert self.reader is not None
        return await codec.read_packet(self.reader, 1 << 20)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()


def hub_password(info: dict[str, Any], device_id: str, key: str) -> tuple[str, bytes]:
    """The (username, password) a device sends in CONNECT to the hub."""
    hub = info["deviceHostName"]
    token = tokens.make_sas_token(
        f"{hub}/devices/{device_id}", base64.b64decode(key), int(time.time()) + 3600
    )
    return f"{hub}/{device_id}/?api-version=2019-10-01", token.encode()


def mosquitto_available() -> bool:
    return os.access(MOSQUITTO, os.X_OK) or shutil.which("mosquitto") is not None


@contextmanager
def mosquitto_process(
    workdir: Path, host: str, port: int, tls_dir: Path, *, persistence: bool
) -> Iterator[int]:
    """mosquitto 2 with a TLS listener on `host:port` (the hub's certificate); yields its pid."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "mosquitto.conf"
    lines = [
        "user root",
        "allow_anonymous true",
        f"listener {port} {host}",
        f"cafile {tls_dir / 'ca.pem'}",
        f"certfile {tls_dir / 'server.pem'}",
        f"keyfile {tls_dir / 'server.key'}",
        "max_connections -1",
        "max_inflight_messages 0",
        "max_queued_messages 100000",
        f"persistence {'true' if persistence else 'false'}",
        f"persistence_location {workdir}/",
        "autosave_interval 0" if persistence else "",
        "log_type error",
        "log_dest stderr",
    ]
    config.write_text("\n".join(line for line in lines if line) + "\n")
    binary = MOSQUITTO if os.access(MOSQUITTO, os.X_OK) else "mosquitto"
    log_path = workdir / "mosquitto.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=log_file
    )
    try:
        deadline = time.monotonic() + 10
        import socket

        while True:
            with socket.socket() as probe:
                if probe.connect_ex((host, port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                err = log_path.read_text(errors="replace")
                raise RuntimeError(f"mosquitto did not start: {err}")
            time.sleep(0.05)
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        log_file.close()
