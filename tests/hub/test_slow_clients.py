"""Slow, idle and unauthenticated clients on both endpoints, over real TLS on loopback: each is
closed or refused by its deadline or cap, and well-behaved clients (the SDKs) carry on."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.iot.hub import IoTHubRegistryManager

from local_hub import LocalHub, tokens
from local_hub.limits import ConnectionLimits
from local_hub.mqtt import codec

LIMITS = ConnectionLimits(
    tls_handshake_timeout=2,
    https_idle_timeout=1.5,
    https_body_timeout=1,
    https_max_connections=3,
    mqtt_connect_timeout=30,
    mqtt_connect_max_bytes=1024,
    mqtt_unauthenticated_per_source=2,
)


@pytest.fixture
def tight_hub(make_hub: Callable[..., LocalHub]) -> LocalHub:
    return make_hub(connection_limits=LIMITS)


@pytest.fixture
def tls(tight_hub: LocalHub) -> Iterator[Callable[[int], ssl.SSLSocket]]:
    """Open TLS connections to `tight_hub` on a port; all are closed afterwards."""
    opened: list[ssl.SSLSocket] = []
    context = ssl.create_default_context(cafile=tight_hub.ca_certificate_path)

    def connect(port: int) -> ssl.SSLSocket:
        raw = socket.create_connection((tight_hub.host, port), timeout=10)
        sock = context.wrap_socket(raw, server_hostname=tight_hub.host)
        opened.append(sock)
        return sock

    yield connect
    for sock in opened:
        sock.close()


def _read_until_closed(sock: ssl.SSLSocket, timeout: float = 10) -> bytes:
    """Everything the server sends until it closes (fails the test if it never does)."""
    sock.settimeout(timeout)
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionError, ssl.SSLError):
            return received
        except TimeoutError:
            pytest.fail(f"the server kept the connection open for {timeout} s")
        if not chunk:
            return received
        received += chunk


def _token(hub: LocalHub) -> str:
    parts = dict(p.split("=", 1) for p in hub.service_connection_string.split(";"))
    key = base64.b64decode(parts["SharedAccessKey"])
    return tokens.make_sas_token(parts["HostName"], key, int(time.time()) + 600)


def _head(hub: LocalHub, method: str, path: str, extra: str = "") -> bytes:
    return (
        f"{method} {path}?api-version=2021-04-12 HTTP/1.1\r\n"
        f"Host: {hub.host}:{hub.service_port}\r\n"
        f"Authorization: {_token(hub)}&skn=iothubowner\r\n{extra}\r\n"
    ).encode()


def test_https_closes_a_connection_that_never_sends_a_request(
    tight_hub: LocalHub, tls: Callable[[int], ssl.SSLSocket]
) -> None:
    assert _read_until_closed(tls(tight_hub.service_port)) == b""


def test_https_closes_a_client_that_trickles_its_headers(
    tight_hub: LocalHub, tls: Callable[[int], ssl.SSLSocket]
) -> None:
    sock = tls(tight_hub.service_port)
    head = _head(tight_hub, "GET", "/devices")
    closed = False
    for i in range(len(head)):  # a byte every 0.2 s: the whole head would take minutes
        try:
            sock.sendall(head[i : i + 1])
        except (ConnectionError, ssl.SSLError):
            closed = True
            break
        time.sleep(0.2)
        if i > 40:  # 8 s, far past the 1.5 s deadline: the server must have closed by now
            break
    assert closed or _read_until_closed(sock, timeout=5) == b""


def test_https_answers_a_slow_body_with_408_and_keeps_serving(
    tight_hub: LocalHub, tls: Callable[[int], ssl.SSLSocket]
) -> None:
    sock = tls(tight_hub.service_port)
    extra = "Content-Type: application/json\r\nContent-Length: 100\r\n"
    sock.sendall(_head(tight_hub, "PUT", "/devices/slow-body", extra) + b'{"deviceId":')
    response = _read_until_closed(sock)
    assert response.startswith(b"HTTP/1.1 408 ")
    body = json.loads(response.split(b"\r\n\r\n", 1)[1])
    assert "did not arrive within 1 s" in body["Message"]
    manager = IoTHubRegistryManager.from_connection_string(tight_hub.service_connection_string)
    manager.protocol.config.connection.verify = tight_hub.ca_certificate_path
    manager.create_device_with_sas("after-slow", None, None, "enabled")
    time.sleep(2)  # past the idle timeout: the SDK's pooled connection was closed by the hub
    assert manager.get_device("after-slow").device_id == "after-slow"


def test_https_caps_open_connections_with_a_503(make_hub: Callable[..., LocalHub]) -> None:
    capped = make_hub(connection_limits=ConnectionLimits(https_max_connections=3))
    context = ssl.create_default_context(cafile=capped.ca_certificate_path)
    opened: list[ssl.SSLSocket] = []

    def connect() -> ssl.SSLSocket:
        raw = socket.create_connection((capped.host, capped.service_port), timeout=10)
        opened.append(context.wrap_socket(raw, server_hostname=capped.host))
        return opened[-1]

    try:
        held = [connect() for _ in range(3)]
        for sock in held:
            sock.sendall(_head(capped, "GET", "/statistics/devices"))  # keep-alive: stays open
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        refused = connect()
        refused.sendall(_head(capped, "GET", "/statistics/devices"))
        response = _read_until_closed(refused)
        assert response.startswith(b"HTTP/1.1 503 ")
        assert b"too many open connections" in response
        assert b"Retry-After: 1" in response
        # One client leaves; once the hub has let go of it (TLS shutdown takes a moment), a new
        # client is served again.
        held[0].close()
        deadline = time.monotonic() + 10
        while True:
            probe = connect()
            probe.sendall(_head(capped, "GET", "/statistics/devices"))
            answer = probe.recv(65536)
            if answer.startswith(b"HTTP/1.1 200 ") or time.monotonic() > deadline:
                break
            assert answer.startswith(b"HTTP/1.1 503 ")
        assert answer.startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in opened:
            sock.close()


def _receive(sock: ssl.SSLSocket, timeout: float = 10) -> codec.Packet | None:
    data = _read_until_closed(sock, timeout) if timeout else b""
    return codec.decode_bytes(data)[0] if data else None


def _connect_packet(hub: LocalHub, device_id: str, key: bytes, padding: int = 0) -> bytes:
    token = tokens.make_sas_token(f"{hub.device_host_name}/devices/{device_id}", key, 2**31)
    username = f"{hub.device_host_name}/{device_id}/?api-version=2019-10-01" + "&x=" * padding
    return codec.encode(codec.Connect(device_id, 60, False, username, token.encode()))


def _device_key(hub: LocalHub, device_id: str) -> bytes:
    manager = IoTHubRegistryManager.from_connection_string(hub.service_connection_string)
    manager.protocol.config.connection.verify = hub.ca_certificate_path
    device: Any = manager.create_device_with_sas(device_id, None, None, "enabled")
    return base64.b64decode(device.authentication.symmetric_key.primary_key)


def test_mqtt_refuses_a_connect_over_the_size_limit_before_authenticating(
    tight_hub: LocalHub, tls: Callable[[int], ssl.SSLSocket]
) -> None:
    key = _device_key(tight_hub, "big-connect")
    sock = tls(8883)
    sock.sendall(_connect_packet(tight_hub, "big-connect", key, padding=400))
    assert _read_until_closed(sock) == b""
    sock = tls(8883)
    sock.sendall(_connect_packet(tight_hub, "big-connect", key))
    sock.settimeout(10)
    assert codec.decode_bytes(sock.recv(4))[0] == codec.ConnAck(False, 0)


def test_mqtt_caps_unauthenticated_connections_per_address(
    tight_hub: LocalHub, tls: Callable[[int], ssl.SSLSocket]
) -> None:
    key = _device_key(tight_hub, "capped")
    silent = [tls(8883) for _ in range(2)]  # the cap: two that have not sent CONNECT
    time.sleep(0.2)
    third = tls(8883)
    third.sendall(_connect_packet(tight_hub, "capped", key))
    assert _read_until_closed(third) == b""  # long before the 30 s CONNECT deadline
    silent[0].close()
    time.sleep(0.2)
    fourth = tls(8883)
    fourth.sendall(_connect_packet(tight_hub, "capped", key))
    fourth.settimeout(10)
    assert codec.decode_bytes(fourth.recv(4))[0] == codec.ConnAck(False, 0)
