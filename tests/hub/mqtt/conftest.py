"""MQTT tests: the real device SDK where it can express the case, and otherwise a raw MQTT
client over real TLS built on the hub's own codec (for malformed input, hand-made tokens and
silent connections the SDK would never produce)."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator

import pytest

from local_hub import LocalHub, tokens
from local_hub.mqtt import codec


class RawClient:
    """A blocking MQTT client over TLS that sends exactly what a test tells it to."""

    def __init__(self, hub: LocalHub) -> None:
        context = ssl.create_default_context(cafile=hub.ca_certificate_path)
        raw = socket.create_connection((hub.host, 8883), timeout=5)
        self.sock = context.wrap_socket(raw, server_hostname=hub.host)
        self.buffer = b""

    def send(self, packet: codec.Packet | bytes) -> None:
        self.sock.sendall(packet if isinstance(packet, bytes) else codec.encode(packet))

    def receive(self, timeout: float = 5) -> codec.Packet | None:
        """The next packet, or None when the hub closed the connection."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                packet, used = codec.decode_bytes(self.buffer)
            except codec.MalformedPacket:
                pass
            else:
                self.buffer = self.buffer[used:]
                return packet
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionError, ssl.SSLError):
                return None
            if not chunk:
                return None
            self.buffer += chunk

    def connect(
        self, hub: LocalHub, device_id: str, key: bytes, *, expiry: int | None = None,
        keepalive: int = 60, clean_session: bool = False,
    ) -> codec.ConnAck:  # fmt: skip
        resource = f"{hub.device_host_name}/devices/{device_id}"
        token = tokens.make_sas_token(resource, key, expiry or int(time.time()) + 3600)
        username = f"{hub.device_host_name}/{device_id}/?api-version=2019-10-01"
        self.send(codec.Connect(device_id, keepalive, clean_session, username, token.encode()))
        ack = self.receive()
        assert isinstance(ack, codec.ConnAck), ack
        return ack

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_client(hub: LocalHub) -> Iterator[Callable[[], RawClient]]:
    """Open raw MQTT connections to the test's hub; all are closed afterwards."""
    opened: list[RawClient] = []

    def open_client() -> RawClient:
        client = RawClient(hub)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()
