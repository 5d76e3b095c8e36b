"""Secrets never reach a log or a response header: an over-long Authorization header (which
aiohttp used to log whole, signature included) through raw HTTPS against an in-process hub and
against `twinfleet hub serve`, the redacting filter on a library's traceback, and the `Server`
header."""

from __future__ import annotations

import base64
import io
import logging
import os
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local_hub import LocalHub, SecretRedactor, install_redactor, tokens
from local_hub.redacting import redact


def _signed(host_name: str, key: bytes) -> str:
    return tokens.make_sas_token(host_name, key, int(time.time()) + 600) + "&skn=iothubowner"


def _send_raw(host: str, port: int, ca_path: str, request: bytes) -> bytes:
    context = ssl.create_default_context(cafile=ca_path)
    with context.wrap_socket(
        socket.create_connection((host, port), timeout=10), server_hostname=host
    ) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def _over_long(host: str, port: int, token: str) -> bytes:
    return (
        f"GET /devices?api-version=2021-04-12 HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: {token}{'x' * 9000}\r\n\r\n"
    ).encode()


@pytest.fixture
def root_log() -> Iterator[io.StringIO]:
    """What a plain handler on the root logger (no redactor) writes during the test."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def test_an_over_long_authorization_header_is_a_400_and_logs_no_signature(
    hub: LocalHub, root_log: io.StringIO
) -> None:
    parts = dict(p.split("=", 1) for p in hub.service_connection_string.split(";"))
    token = _signed(parts["HostName"], base64.b64decode(parts["SharedAccessKey"]))
    signature = token.split("sig=")[1].split("&")[0]
    response = _send_raw(
        hub.host, hub.service_port, hub.ca_certificate_path,
        _over_long(hub.host, hub.service_port, token),
    )  # fmt: skip
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 "))
    assert b"iothub-errorcode: ArgumentInvalid" in head
    assert b"Server: twinfleet-hub\r\n" in head
    assert signature.encode() not in response
    assert b"malformed (LineTooLong)" in body
    log = root_log.getvalue()
    assert "LineTooLong" in log  # the refusal is logged, once, as one line
    assert signature not in log
    assert "Traceback" not in log


def test_the_hub_process_logs_no_secret(hub_process: Any) -> None:
    info = hub_process.start()
    parts = dict(p.split("=", 1) for p in info["serviceConnectionString"].split(";"))
    key = base64.b64decode(parts["SharedAccessKey"])
    token = _signed(parts["HostName"], key)
    host, port = info["serviceEndpoint"]["host"], info["serviceEndpoint"]["port"]
    for _ in range(3):
        _send_raw(host, port, info["caCertificatePath"], _over_long(host, port, token))
    hub_process.process.send_signal(signal.SIGTERM)
    _, stderr = hub_process.process.communicate(timeout=15)
    log = stderr.decode()
    assert "refused an HTTP request: LineTooLong" in log
    assert "hub twinfleet stopped" in log
    assert token.split("sig=")[1].split("&")[0] not in log
    assert parts["SharedAccessKey"] not in log


def test_the_redactor_cleans_a_librarys_record_and_traceback() -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    secret_url = "https://hub/artifacts/fw.bin?se=1&sig=Zm9vYmFy-_sig"
    connection = f"HostName=h;DeviceId=d;SharedAccessKey={key}"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("some.library")
    logger.addHandler(handler)
    logger.propagate = False
    install_redactor(logger)
    install_redactor(logger)  # idempotent
    assert sum(isinstance(f, SecretRedactor) for f in handler.filters) == 1
    try:
        try:
            raise ValueError(f"cannot open {secret_url} with {connection}")
        except ValueError:
            logger.exception("failed %s, key %r", secret_url, {"primaryKey": key})
        logger.warning(
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----"
        )
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    written = stream.getvalue()
    assert "Zm9vYmFy" not in written
    assert key not in written
    assert "MC4CAQAwBQYDK2VwBCIEI" not in written
    assert "Traceback" in written  # the traceback stays, cleaned
    assert written.count("<redacted>") >= 5


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "device fw-1 reported 1.2.0; sha256 " + "ab" * 32 + " signature verified; se=17"
    assert redact(text) == text


def test_no_response_names_the_server_software(hub: LocalHub) -> None:
    url = f"https://{hub.host}:{hub.service_port}"
    with requests.Session() as session:
        for path in ("/devices", "/nowhere", "/twins/x?api-version=2021-04-12"):
            response = session.get(url + path, verify=hub.ca_certificate_path)
            assert response.headers["Server"] == "twinfleet-hub", path
