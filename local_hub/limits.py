"""How long slow or idle clients may stay, and how many may connect: both endpoints' bounds."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_CONNECTION_LIMITS", "ConnectionLimits"]


@dataclass(frozen=True)
class ConnectionLimits:
    """Bounds on connections that protect the hub from slow, idle and unauthenticated clients.

    Attributes:
        tls_handshake_timeout: seconds a client has to finish the TLS handshake (both endpoints).
        https_idle_timeout: seconds an HTTPS connection may stay without a complete request head:
            from the handshake, or from the end of the previous response (keep-alive idle), to
            the last header. A client trickling its headers a byte at a time is closed too.
        https_body_timeout: seconds a request body may take to arrive once its headers have.
        https_max_connections: open HTTPS connections; beyond it a client gets 503 and a close.
        mqtt_connect_timeout: seconds a device has to send CONNECT after the handshake.
        mqtt_connect_max_bytes: the largest CONNECT (read before the credentials are checked).
        mqtt_unauthenticated_per_source: connections one address may hold before its CONNECT
            is accepted; more are closed at once.
    """

    tls_handshake_timeout: float = 10.0
    https_idle_timeout: float = 60.0
    https_body_timeout: float = 30.0
    https_max_connections: int = 512
    mqtt_connect_timeout: float = 10.0
    mqtt_connect_max_bytes: int = 8 * 1024
    mqtt_unauthenticated_per_source: int = 64


DEFAULT_CONNECTION_LIMITS = ConnectionLimits()
