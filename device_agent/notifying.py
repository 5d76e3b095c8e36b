"""systemd's service notification protocol, spoken without a library.

Under `Type=notify`, systemd passes `$NOTIFY_SOCKET`: a Unix datagram socket, either a path or,
when it starts with `@`, a name in the abstract namespace. A service sends newline-separated
`KEY=value` assignments to it: `READY=1` when it has started, `STATUS=...` for `systemctl status`,
`WATCHDOG=1` at least once per `$WATCHDOG_USEC` microseconds (when `WatchdogSec=` is set and
`$WATCHDOG_PID` is unset or names this process), `STOPPING=1` when it shuts down.

Outside systemd (no `$NOTIFY_SOCKET`) every call is a no-op, so the agent runs the same in a
terminal. A lost datagram is not an error: systemd's own client library ignores it too.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    """Sends notifications to the service manager named by the environment (if any)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        if address.startswith("@"):
            self._address = b"\0" + address[1:].encode()
        elif address.startswith("/"):
            self._address = address
        self._socket: socket.socket | None = None
        self.watchdog_interval: float | None = None
        watchdog_pid = environ.get("WATCHDOG_PID", "")
        usec = environ.get("WATCHDOG_USEC", "")
        if usec.isdigit() and int(usec) > 0 and watchdog_pid in ("", str(os.getpid())):
            self.watchdog_interval = int(usec) / 1_000_000

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens."""
        return self._address is not None

    def notify(self, **assignments: str) -> None:
        """Send `KEY=value` lines, e.g. `notify(READY="1", STATUS="connected")`."""
        if self._address is None:
            return
        message = "\n".join(f"{key}={value}" for key, value in assignments.items())
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
            self._socket.sendto(message.encode(), self._address)
        except OSError as exc:
            log.debug("notifying the service manager failed: %s", exc)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
