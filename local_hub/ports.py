"""Listening on IoT Hub's own HTTPS port, 443, without running as root.

Every service SDK but Python's takes the connection string's `HostName` as a bare host name and
dials port 443, so a hub that other languages reach must listen there. Linux reserves the ports
below `net.ipv4.ip_unprivileged_port_start` (1024 by default) for processes holding
`CAP_NET_BIND_SERVICE`. Two ways give it to the hub without root: the capability on the Python
interpreter's file (`setcap`), or a lower limit for the whole machine (`sysctl`). This module
says which applies, and whether an address's port is free to take.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path

__all__ = ["can_listen", "permission_hint", "unprivileged_port_start"]

_SYSCTL = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
_LINUX_DEFAULT = 1024


def unprivileged_port_start() -> int:
    """The lowest port an unprivileged process may listen on (1024 unless lowered)."""
    try:
        return int(_SYSCTL.read_text().strip())
    except (OSError, ValueError):
        return _LINUX_DEFAULT


def can_listen(host: str, port: int) -> bool:
    """Whether this process may listen on `host:port` now (the port free and allowed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def permission_hint(exc: OSError, host: str, port: int) -> str | None:
    """A sentence explaining how to allow listening on a low `port`, if `exc` is that refusal.

    Returns None when `exc` is not a permission error or the port is not a privileged one.
    """
    if exc.errno != errno.EACCES or not 0 < port < unprivileged_port_start():
        return None
    interpreter = os.path.realpath(sys.executable)
    return (
        f"permission denied to listen on {host}:{port}: ports below "
        f"{unprivileged_port_start()} need privilege. Without root, either grant it to this "
        f"Python (`sudo setcap cap_net_bind_service=+ep {interpreter}`) or lower the limit "
        f"(`sudo sysctl net.ipv4.ip_unprivileged_port_start={port}`); or pick another "
        f"--service-port, which only the Python service SDK can then reach."
    )
